"""eegvision: decode what a person saw from their EEG or MEG."""

__version__ = "0.1.0"
