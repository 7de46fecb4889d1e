"""Feature-based reconstruction metrics: two-way identification and correlation distance (MindEye suite).

* **Two-way identification** (AlexNet(2), AlexNet(5), Inception, CLIP): with r[i, j] the Pearson correlation
  between the features of ground truth i and reconstruction j, reconstruction j scores the fraction of the other
  N − 1 ground truths i ≠ j with ``r[i, j] < r[j, j]``. Deterministic, no random distractors; chance 0.5.
* **Correlation distance** (EffNet-B1, SwAV-RN50): ``1 − r[j, j]``, i.e. ``scipy.spatial.distance.correlation``.

The networks and their preprocessing follow ``atm.md`` §5.6 exactly; every network loads from a local file
(torchvision state dicts; a transformers ``CLIPModel`` folder for CLIP):

============  ==========================  ==============  ======  =============
metric        network (file in WEIGHTS)   node            resize  normalisation
============  ==========================  ==============  ======  =============
AlexNet(2)    ``alexnet.pth``             ``features.4``  256     ImageNet
AlexNet(5)    ``alexnet.pth``             ``features.11`` 256     ImageNet
Inception     ``inception_v3.pth``        ``avgpool``     342     ImageNet
CLIP          ``clip-vit-large-patch14/`` image embeds    224     CLIP
EffNet-B      ``efficientnet_b1.pth``     ``avgpool``     255     ImageNet
SwAV          ``swav_resnet50.pth``       ``avgpool``     224     ImageNet
============  ==========================  ==============  ======  =============

torchvision's own file names (``alexnet-owt-7be5be79.pth``, ``inception_v3_google-0cc3c7bd.pth``,
``efficientnet_b1-c27df63c.pth``) are accepted too. SwAV's hub checkpoint converts with
:func:`convert_swav_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class FeatureMetric:
    """One feature-based metric: which network, which node, how images are prepared, how it is scored."""

    name: str
    network: str
    node: str | None
    size: int | None            # None: the model's own input size (CLIP)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    kind: str                   # "two_way" or "distance"


FEATURE_METRICS: dict[str, FeatureMetric] = {m.name: m for m in (
    FeatureMetric("AlexNet(2)", "alexnet", "features.4", 256, IMAGENET_MEAN, IMAGENET_STD, "two_way"),
    FeatureMetric("AlexNet(5)", "alexnet", "features.11", 256, IMAGENET_MEAN, IMAGENET_STD, "two_way"),
    FeatureMetric("Inception", "inception_v3", "avgpool", 342, IMAGENET_MEAN, IMAGENET_STD, "two_way"),
    FeatureMetric("CLIP", "clip", None, None, CLIP_MEAN, CLIP_STD, "two_way"),
    FeatureMetric("EffNet-B", "efficientnet_b1", "avgpool", 255, IMAGENET_MEAN, IMAGENET_STD, "distance"),
    FeatureMetric("SwAV", "swav_resnet50", "avgpool", 224, IMAGENET_MEAN, IMAGENET_STD, "distance"),
)}

#: accepted file names per network, first = the documented name
WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    "alexnet": ("alexnet.pth", "alexnet.safetensors", "alexnet-owt-7be5be79.pth"),
    "inception_v3": ("inception_v3.pth", "inception_v3.safetensors", "inception_v3_google-0cc3c7bd.pth"),
    "efficientnet_b1": ("efficientnet_b1.pth", "efficientnet_b1.safetensors", "efficientnet_b1-c27df63c.pth"),
    "swav_resnet50": ("swav_resnet50.pth", "swav_resnet50.safetensors"),
    "clip": ("clip-vit-large-patch14",),
}


_HEADS = {"alexnet": ("classifier.",), "inception_v3": ("fc.", "AuxLogits."), "efficientnet_b1": ("classifier.",),
          "swav_resnet50": ("fc.",)}


# ---------------------------------------------------------------------------- scoring from correlations
def correlation_matrix(gt_features: torch.Tensor, rec_features: torch.Tensor) -> torch.Tensor:
    """Pearson r between every ground-truth row and every reconstruction row: ``(N_gt, N_rec)``."""
    a = _standardize(gt_features)
    b = _standardize(rec_features.to(a.device))
    return a @ b.T


def _standardize(f: torch.Tensor) -> torch.Tensor:
    f = f.flatten(1).double()
    f = f - f.mean(1, keepdim=True)
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-30)


def two_way_identification(corr: torch.Tensor, target: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-reconstruction two-way identification from a correlation matrix.

    Parameters
    ----------
    corr : tensor (N_gt, M)
        ``corr[i, m]`` = Pearson r between ground truth i and reconstruction m.
    target : (M,) int
        Row of the ground truth that reconstruction m reconstructs.

    Returns
    -------
    tensor (M,): fraction of the other ``N_gt − 1`` ground truths that correlate less with reconstruction m than
    its own ground truth does (MindEye: ``mean(sum(r < diag(r), 0)) / (N − 1)``).
    """
    target = torch.as_tensor(np.asarray(target), dtype=torch.long, device=corr.device)
    n = corr.shape[0]
    if n < 2:
        raise ValueError("Two-way identification needs at least 2 ground-truth images.")
    own = corr.gather(0, target[None, :])                    # (1, M)
    return (corr < own).sum(0).double() / (n - 1)           # own row never counts (r < r is False)


def correlation_distance(corr: torch.Tensor, target: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``1 − r`` between each reconstruction and its own ground truth (``scipy.spatial.distance.correlation``)."""
    target = torch.as_tensor(np.asarray(target), dtype=torch.long, device=corr.device)
    return 1.0 - corr.gather(0, target[None, :])[0]


# ---------------------------------------------------------------------------- networks
def find_weights(weights_dir: str | Path, network: str) -> Path:
    """The weight file (or folder, for CLIP) of ``network`` under ``weights_dir``; a clear error if missing."""
    weights_dir = Path(weights_dir)
    names = WEIGHT_FILES[network]
    for name in names:
        if (weights_dir / name).exists():
            return weights_dir / name
    raise FileNotFoundError(
        f"No weights for {network!r} in {weights_dir}: expected {' or '.join(names)}. "
        "See docs/reconstruction.md ('Metric weights') for how to obtain and name them, or leave this metric "
        "out with --metrics.")


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from eegvision.tensorfiles import load_safetensors, load_torch

    if path.suffix == ".safetensors":
        return load_safetensors(path, "Metric weights")
    state = load_torch(path, "Metric weights")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def build_torchvision_network(network: str, weights_path: str | Path) -> nn.Module:
    """A torchvision classifier in eval mode with the state dict at ``weights_path``.

    The classifier head (unused by the metric nodes) may be absent from the file — SwAV checkpoints have none;
    any other missing or unexpected key raises.
    """
    import torchvision.models as tvm

    if network == "alexnet":
        model = tvm.alexnet(weights=None)
    elif network == "inception_v3":  # transform_input=True as torchvision sets it for its pretrained weights
        model = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    elif network == "efficientnet_b1":
        model = tvm.efficientnet_b1(weights=None)
    elif network == "swav_resnet50":
        model = tvm.resnet50(weights=None)
    else:
        raise ValueError(f"Unknown metric network {network!r}; choose one of {sorted(WEIGHT_FILES)}.")
    state = _load_state_dict(Path(weights_path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # classifier heads are never read by the metric nodes; a file without them (SwAV has none) is fine
    missing = [k for k in missing if not k.startswith(_HEADS[network])]
    unexpected = [k for k in unexpected if not k.startswith(("projection_head.", "prototypes."))]
    if missing or unexpected:
        raise ValueError(f"{weights_path} does not hold torchvision {network} weights: missing "
                         f"{sorted(missing)[:5]}, unexpected {unexpected[:5]}.")
    return model.eval()


def convert_swav_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Turn SwAV's hub checkpoint (``swav_800ep_pretrain.pth.tar``) into a torchvision ResNet-50 state dict.

    Strips the DDP ``module.`` prefix and drops the projection head and prototypes; the result loads into
    ``torchvision.models.resnet50`` with only ``fc.*`` missing, which the metric does not use (it reads
    ``avgpool``).
    """
    state = _load_state_dict(Path(source))
    state = {k: v for k, v in state.items() if not k.startswith(("projection_head.", "prototypes.", "fc."))}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)
    return target


class FeatureExtractors:
    """The networks behind the feature metrics, loaded once, applied to batches of [0, 1] images.

    Parameters
    ----------
    weights_dir : path
        Folder holding the files of :data:`WEIGHT_FILES`.
    metrics : iterable of str
        Names from :data:`FEATURE_METRICS`; only their networks are loaded.
    device : str, optional
        Torch device (default: CUDA when available).
    antialias : bool, optional
        Of the resizes to each network's input size (see :func:`eegvision.metrics.images.resize`): ``None``
        follows ``resize_antialias`` (on by default); ``False`` is MindEye2's published environment.
    """

    def __init__(self, weights_dir: str | Path, metrics: Iterable[str], device: str | None = None,
                 antialias: bool | None = None) -> None:
        from torchvision.models.feature_extraction import create_feature_extractor

        from eegvision.utils import default_device

        self.antialias = antialias
        self.device = torch.device(default_device(device))
        self.metrics = [FEATURE_METRICS[m] for m in metrics]
        self._extractors: dict[str, nn.Module] = {}
        self.clip = None
        paths = {m.network: find_weights(weights_dir, m.network) for m in self.metrics}  # fail before loading
        for network, path in paths.items():
            if network == "clip":
                from transformers import CLIPModel

                self.clip = CLIPModel.from_pretrained(str(path)).eval().to(self.device)
                continue
            nodes = sorted({m.node for m in self.metrics if m.network == network})
            model = build_torchvision_network(network, path)
            self._extractors[network] = create_feature_extractor(model, {n: n for n in nodes}).eval().to(self.device)

    def clip_size(self) -> int:
        return int(self.clip.config.vision_config.image_size)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features ``{metric name: (B, F) float32 on CPU}`` of ``images`` ``(B, 3, H, W)`` in [0, 1]."""
        from eegvision.metrics.images import resize

        images = images.to(self.device, torch.float32)
        out: dict[str, torch.Tensor] = {}
        cache: dict[tuple, dict[str, torch.Tensor]] = {}
        for m in self.metrics:
            size = self.clip_size() if m.network == "clip" else m.size
            key = (m.network, size)
            if key not in cache:
                x = resize(images, size, self.antialias)
                mean = torch.tensor(m.mean, device=self.device).view(1, 3, 1, 1)
                std = torch.tensor(m.std, device=self.device).view(1, 3, 1, 1)
                x = (x - mean) / std
                if m.network == "clip":
                    feats = self.clip.get_image_features(pixel_values=x)
                    feats = feats if torch.is_tensor(feats) else feats.pooler_output
                    cache[key] = {"": feats}
                else:
                    cache[key] = self._extractors[m.network](x)
            out[m.name] = cache[key]["" if m.network == "clip" else m.node].flatten(1).float().cpu()
        return out
