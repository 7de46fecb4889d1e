"""eegvision.readers: data as users hold it, read safely and in place.

THINGS-EEG2 pickles (:mod:`.things_eeg2`, parsed by :mod:`.safe_pickle` and :mod:`.pickle_values`: nothing
in a file is executed),
THINGS-MEG and any MNE ``-epo.fif`` (:mod:`.things_meg`, :mod:`.epochs`), image folders and prompts
(:mod:`.images`), channel names and montages (:mod:`.channels`). Readers only read: turning what they read
into an eegvision store is :mod:`eegvision.store.convert`. Names are imported on first access.
"""

from eegvision._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "PREPROCESSED_DIR": "things_eeg2",
    "SPLITS": "things_eeg2",
    "PreprocessedFile": "things_eeg2",
    "images_per_concept": "things_eeg2",
    "open_preprocessed": "things_eeg2",
    "things_eeg2_concepts": "things_eeg2",
    "things_eeg2_metadata": "things_eeg2",
    "ArrayRef": "pickle_values",
    "PickleFormatError": "pickle_values",
    "TruncatedFileError": "pickle_values",
    "UnsafePickleError": "pickle_values",
    "load_data_pickle": "safe_pickle",
    "parse_data_pickle": "safe_pickle",
    "CATCH_CODE": "things_meg",
    "find_things_meg_files": "things_meg",
    "read_image_concept_index": "things_meg",
    "read_image_paths": "things_meg",
    "split_things_meg_events": "things_meg",
    "LazyEpochsArray": "epochs",
    "data_picks": "epochs",
    "group_repetitions": "epochs",
    "read_metadata_table": "epochs",
    "time_slice": "epochs",
    "STORE_UNITS": "epochs",
    "DEFAULT_PROMPT_TEMPLATE": "images",
    "IMAGE_EXTENSIONS": "images",
    "ImageSet": "images",
    "concept_from_folder": "images",
    "make_prompts": "images",
    "scan_image_folder": "images",
    "normalize_subject": "subjects",
})
