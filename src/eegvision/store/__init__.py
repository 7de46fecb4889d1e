"""eegvision.store: the on-disk store (read, write, convert) and the in-place THINGS-EEG2 view.

* :mod:`.base` -- :class:`Store`, the read interface every data source offers, and the layout's names;
* :mod:`.concepts` -- :class:`ConceptTable`, the 0-based concept table that travels into features, runs and
  reconstructions;
* :mod:`.disk` -- :func:`open_store` (memory-mapped arrays, metadata tables, manifest);
* :mod:`.writer` -- :class:`StoreWriter` (atomic, streamed, resumable);
* :mod:`.things_folder` -- :func:`open_things_eeg2`, a THINGS-EEG2 download read in place as a store;
* :mod:`.convert` -- THINGS-EEG2, THINGS-MEG and MNE epochs into a store.
"""

from eegvision._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "FORMAT_VERSION": "base",
    "MANIFEST_NAME": "base",
    "METADATA_COLUMNS": "base",
    "Store": "base",
    "source_entry": "base",
    "ConceptTable": "concepts",
    "normalize_concept": "concepts",
    "DiskStore": "disk",
    "open_store": "disk",
    "StoreWriter": "writer",
    "ThingsEEG2Folder": "things_folder",
    "open_things_eeg2": "things_folder",
    "convert_epochs": "convert",
    "convert_things_eeg2": "convert",
    "convert_things_meg": "convert",
})
