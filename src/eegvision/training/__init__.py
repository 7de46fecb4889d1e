"""eegvision.training"""
