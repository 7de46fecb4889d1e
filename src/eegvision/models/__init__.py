"""eegvision.models"""
