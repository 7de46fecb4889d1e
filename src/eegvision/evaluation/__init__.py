"""eegvision.evaluation"""
