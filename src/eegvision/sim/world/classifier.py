"""The world's attribute classifier: a small CNN that reads shape, colour, texture and background from a picture.

It scores reconstructions without pretrained networks: a reconstruction of a test concept is
"recognisably right" in an attribute when the classifier reads the concept's value of that attribute
from it (:func:`attribute_match`). Trained on the world's training-concept images
(:func:`train_classifier`); its accuracy on held-out test-concept images is the ceiling of that score.

Saved as ``classifier.safetensors`` + ``classifier.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eegvision.sim.world.data import ATTRIBUTES, WorldImages, to_model_input


class AttributeCNN(nn.Module):
    """Three conv blocks (32→16→8→4) and one linear head per attribute."""

    def __init__(self, width: int = 16, attributes: dict[str, int] | None = None) -> None:
        super().__init__()
        attributes = attributes or {a: len(v) for a, v in ATTRIBUTES.items()}
        self.config = {"width": width, "attributes": dict(attributes)}

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.GELU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 2 * width),
                                      nn.Flatten(), nn.Linear(2 * width * 16, 128), nn.GELU())
        self.heads = nn.ModuleDict({a: nn.Linear(128, n) for a, n in attributes.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {a: head(h) for a, head in self.heads.items()}


class WorldClassifier:
    """:class:`AttributeCNN` plus batched prediction."""

    def __init__(self, model: AttributeCNN, device: str | None = None) -> None:
        from eegvision.utils import default_device

        self.device = default_device(device)
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def logits(self, images, batch_size: int = 512) -> dict[str, torch.Tensor]:
        x = to_model_input(images, "cpu")
        parts = [self.model(x[i:i + batch_size].to(self.device)) for i in range(0, len(x), batch_size)]
        return {a: torch.cat([p[a].float().cpu() for p in parts]) for a in self.model.heads}

    def classify(self, images) -> dict[str, np.ndarray]:
        """Predicted label index of every attribute: ``{attr: (n,) int64}`` (values: ``ATTRIBUTES[attr]``)."""
        return {a: v.argmax(1).numpy() for a, v in self.logits(images).items()}

    def classify_names(self, images) -> dict[str, list[str]]:
        """Like :meth:`classify` with attribute value names instead of indices."""
        return {a: [ATTRIBUTES[a][i] for i in v] for a, v in self.classify(images).items()}

    def save(self, directory: str | Path) -> list[Path]:
        from safetensors.torch import save_file

        from eegvision.utils import atomic_path, write_text_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with atomic_path(directory / "classifier.safetensors", suffix=".safetensors") as tmp:
            save_file(state, str(tmp))
        meta = {"config": self.model.config, "values": {a: list(v) for a, v in ATTRIBUTES.items()}}
        write_text_atomic(directory / "classifier.json", json.dumps(meta, indent=1) + "\n")
        return [directory / "classifier.safetensors", directory / "classifier.json"]

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> "WorldClassifier":
        from eegvision.tensorfiles import load_safetensors

        directory = Path(directory)
        meta = json.loads((directory / "classifier.json").read_text())
        model = AttributeCNN(**meta["config"])
        model.load_state_dict(load_safetensors(directory / "classifier.safetensors", "World classifier weights"), strict=True)
        return cls(model, device)


def _as_labels(concept_attributes, n: int) -> dict[str, np.ndarray]:
    """Concept attributes as ``{attr: (n,) label indices}`` from label arrays, value names or Concepts."""
    if isinstance(concept_attributes, (list, tuple)):
        concept_attributes = {a: [getattr(c, a) for c in concept_attributes] for a in ATTRIBUTES}
    out = {}
    for a, vals in concept_attributes.items():
        if a not in ATTRIBUTES:
            raise ValueError(f"Unknown attribute {a!r}; the world's attributes are {', '.join(ATTRIBUTES)}.")
        vals = list(vals) if not isinstance(vals, np.ndarray) else vals
        if len(vals) != n:
            raise ValueError(f"Attribute {a!r} has {len(vals)} values for {n} images; give one per image.")
        if len(vals) and isinstance(vals[0], str):
            bad = [v for v in vals if v not in ATTRIBUTES[a]]
            if bad:
                raise ValueError(f"Unknown {a} value {bad[0]!r}; known: {', '.join(ATTRIBUTES[a])}.")
            vals = [ATTRIBUTES[a].index(v) for v in vals]
        out[a] = np.asarray(vals, dtype=np.int64)
    return out


def attribute_match(classifier: WorldClassifier, recon_images, concept_attributes) -> dict[str, float]:
    """Fraction of reconstructions whose attribute, as read by ``classifier``, is the true concept's.

    Parameters
    ----------
    recon_images
        Reconstructions (any form :func:`~eegvision.sim.world.data.to_model_input` accepts).
    concept_attributes
        The ground truth, one entry per image: a list of :class:`~eegvision.sim.scene.Concept`,
        or ``{attr: values}`` with value names (``"red"``) or label indices.

    Returns
    -------
    dict
        ``{attr: accuracy}`` for each attribute given, plus ``{attr}_chance`` (1 / number of values).
    """
    pred = classifier.classify(recon_images)
    n = len(next(iter(pred.values())))
    truth = _as_labels(concept_attributes, n)
    out: dict[str, float] = {}
    for a, y in truth.items():
        out[a] = float((pred[a] == y).mean())
        out[f"{a}_chance"] = 1.0 / len(ATTRIBUTES[a])
    return out


def train_classifier(data: WorldImages, steps: int = 600, batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
                     device: str | None = None, width: int = 24) -> WorldClassifier:
    """Train :class:`AttributeCNN` with the summed cross-entropy of the four heads (AdamW, one-cycle)."""
    from eegvision.progress import track
    from eegvision.utils import default_device

    device = default_device(device)
    torch.manual_seed(seed)
    model = AttributeCNN(width).to(device).train()
    x_all = to_model_input(data.images, "cpu")
    labels = {a: torch.from_numpy(v) for a, v in data.labels.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(seed)
    for _ in track(range(steps), description="training world classifier"):
        idx = torch.randint(len(x_all), (batch_size,), generator=g)
        xb = x_all[idx]
        # mild photometric noise so that generator samples (slightly noisy, blurred) are read robustly
        xb = xb + 0.03 * torch.randn(xb.shape, generator=g)
        out = model(xb.to(device))
        loss = sum(F.cross_entropy(out[a], labels[a][idx].to(device)) for a in out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return WorldClassifier(model, device)


def accuracy(classifier: WorldClassifier, data: WorldImages) -> dict[str, float]:
    """Per-attribute accuracy of ``classifier`` on ``data`` (true labels from the concepts)."""
    return attribute_match(classifier, data.images, data.labels)
