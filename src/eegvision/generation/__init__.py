"""eegvision.generation"""
