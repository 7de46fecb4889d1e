"""eegvision.data: readers, the store, the torch dataset, splits and MNE/braindecode interop.

Names are imported lazily (on first access), so ``import eegvision.data`` loads neither torch
nor mne.
"""

from __future__ import annotations

import importlib

#: public name -> submodule that defines it (add entries here; imports stay lazy)
_LAZY = {
    # torch dataset over a store (eegvision.data.dataset)
    "EEGDataset": "dataset",
    "EpochBatchSampler": "dataset",
    "time_window_slice": "dataset",
    # subject folds and validation split (eegvision.data.splits)
    "Fold": "splits",
    "ValidationSplit": "splits",
    "validation_split": "splits",
    "loso_folds": "splits",
    "within_subject": "splits",
    "joint": "splits",
    # the on-disk store (eegvision.data.store)
    "Store": "store",
    "DiskStore": "store",
    "StoreWriter": "store",
    "open_store": "store",
    "normalize_subject": "store",
    "METADATA_COLUMNS": "store",
    # THINGS-EEG2 preprocessed files, read safely in place (eegvision.data.things_eeg2)
    "PreprocessedFile": "things_eeg2",
    "ThingsEEG2Folder": "things_eeg2",
    "open_preprocessed": "things_eeg2",
    "open_things_eeg2": "things_eeg2",
    "convert_things_eeg2": "things_eeg2",
    "things_eeg2_concepts": "things_eeg2",
    "things_eeg2_metadata": "things_eeg2",
    # restricted pickle parser (eegvision.data.safe_pickle)
    "ArrayRef": "safe_pickle",
    "parse_data_pickle": "safe_pickle",
    "load_data_pickle": "safe_pickle",
    "UnsafePickleError": "safe_pickle",
    "TruncatedFileError": "safe_pickle",
    "PickleFormatError": "safe_pickle",
    # image folders and prompts (eegvision.data.images)
    "ImageSet": "images",
    "scan_image_folder": "images",
    "make_prompts": "images",
    "DEFAULT_PROMPT_TEMPLATE": "images",
    # THINGS-EEG2 raw preprocessing and MVNN (eegvision.data.raw_preprocess, eegvision.data.mvnn)
    "preprocess_things_eeg2": "raw_preprocess",
    "load_raw_recording": "raw_preprocess",
    "epoch_session": "raw_preprocess",
    "merge_sessions": "raw_preprocess",
    "write_eeg_pickle": "raw_preprocess",
    "ledoit_wolf_covariances": "mvnn",
    "mvnn_covariance": "mvnn",
    "inverse_sqrt": "mvnn",
    "whiten": "mvnn",
    # THINGS-MEG and generic MNE epochs readers (eegvision.data.things_meg, eegvision.data.epochs_reader)
    "convert_things_meg": "things_meg",
    "split_things_meg_events": "things_meg",
    "convert_epochs": "epochs_reader",
    "group_repetitions": "epochs_reader",
    "LazyEpochsArray": "epochs_reader",
    # MNE / braindecode interop (eegvision.data.interop)
    "to_mne_epochs": "interop",
    "to_braindecode": "interop",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
