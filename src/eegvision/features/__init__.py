"""eegvision.features: image and text features, the targets encoders are trained to.

* :mod:`.files` -- feature files (safetensors + metadata, checked on load) and import of ATM ``.pt`` caches;
* :mod:`.vision` -- features of images and prompts from a local open_clip or transformers model.
"""

from eegvision._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "Features": "files",
    "import_atm_features": "files",
    "is_unit_norm": "files",
    "load_features": "files",
    "save_features": "files",
    "split_from_name": "files",
    "BACKENDS": "vision",
    "VisionModel": "vision",
    "extract_features": "vision",
    "extract_image_features": "vision",
    "extract_text_features": "vision",
    "load_vision_model": "vision",
})
