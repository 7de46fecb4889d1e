"""eegvision.features: image and text features, the targets encoders are trained to.

* :mod:`.files` -- feature files (safetensors + metadata, checked on load) and import of ATM ``.pt`` caches;
* :mod:`.vision` -- features of images and prompts from a local open_clip or transformers model;
* :mod:`.backbones` -- any layer of a local open_clip, transformers (CLIP, SigLIP, DINOv2) or timm backbone;
* :mod:`.vae` -- VAE latents (diffusers ``AutoencoderKL``) as a target;
* :mod:`.image_priors` -- image-side priors: UBP's blur, NeuroBridge's cognitive prior augmentation;
* :mod:`.targets` -- several layers / prior views into one cached feature file each.
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
    "Backbone": "backbones",
    "load_backbone": "backbones",
    "resolve_layer": "backbones",
    "load_vae_backbone": "vae",
    "ImagePrior": "image_priors",
    "TargetsResult": "targets",
    "extract_targets": "targets",
})
