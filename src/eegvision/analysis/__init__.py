"""eegvision.analysis"""
