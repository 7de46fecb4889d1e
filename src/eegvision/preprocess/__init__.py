"""eegvision.preprocess: raw recordings to epochs (THINGS-EEG2 raw pipeline) and noise whitening (MVNN)."""

from eegvision._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "PARTITIONS": "raw_sessions",
    "TARGET_CODE": "raw_sessions",
    "SessionEpochs": "raw_sessions",
    "find_raw_files": "raw_sessions",
    "load_raw_recording": "raw_sessions",
    "epoch_session": "raw_sessions",
    "merge_sessions": "raw_things_eeg2",
    "write_eeg_pickle": "raw_things_eeg2",
    "preprocess_things_eeg2": "raw_things_eeg2",
    "ledoit_wolf_covariances": "mvnn",
    "mvnn_covariance": "mvnn",
    "inverse_sqrt": "mvnn",
    "whiten": "mvnn",
})
