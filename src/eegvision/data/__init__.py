"""eegvision.data: from a store to training batches.

* :mod:`.sources` -- :func:`open_data`: a store or a THINGS-EEG2 folder, opened as a store;
* :mod:`.dataset` -- the torch dataset over a store (channels, time window, averaging, subject ids);
* :mod:`.splits` -- subject folds and the held-out-concept validation split;
* :mod:`.mixing` -- repetition mixing (convex mixtures of one condition's repetitions);
* :mod:`.interop` -- MNE epochs and braindecode datasets.

Names are imported on first access, so ``import eegvision.data`` loads neither torch nor mne.
"""

from eegvision._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "open_data": "sources",
    "EEGDataset": "dataset",
    "EpochBatchSampler": "dataset",
    "time_window_slice": "dataset",
    "Fold": "splits",
    "ValidationSplit": "splits",
    "validation_split": "splits",
    "loso_folds": "splits",
    "within_subject": "splits",
    "joint": "splits",
    "RepetitionMix": "mixing",
    "to_mne_epochs": "interop",
    "to_braindecode": "interop",
})
