"""eegvision.cli"""
