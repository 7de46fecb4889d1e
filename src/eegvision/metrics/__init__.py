"""eegvision.metrics"""
