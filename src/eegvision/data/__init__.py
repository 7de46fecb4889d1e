"""eegvision.data"""
