"""eegvision.report"""
