"""CLIP feature files: safetensors with metadata, checked on load; import of the reference's ``.pt`` caches.

A feature file holds the tensor ``image`` (n_images, dim), row i = image/condition i of a split in store order,
optionally ``text`` (n_concepts, dim), row j = concept j, and string metadata:

``model``, ``pretrained``, ``layer``, ``transform``, ``normalized`` ("true"/"false"), ``split``,
``prompt_template``, ``eegvision_version`` (plus ``source`` for imported files), and, when the split's concepts are
known, ``concepts``: the split's :class:`~eegvision.store.concepts.ConceptTable` as JSON (0-based ``concept_index``,
``concept``, ``image``). :func:`load_features` reads it into :attr:`Features.concepts` and checks it against the
data's table when the caller gives one.

**Token files** hold ``image`` of shape ``(n_images, n_tokens, dim)`` instead: the patch tokens of one or more
layers of a vision tower (``eegvision features ... --pooling tokens``, :mod:`eegvision.features.tokens`), for the
trainable multi-view target (``FitConfig.multi_view_target``). Their metadata says ``kind: "tokens"`` and
``layers``: a JSON list with the layer (1-based block) of each token, in token order; the tokens of several layers
are concatenated along the token axis, layer by layer (all tokens of the first layer, then the next ...), each
layer's tokens in row-major patch-grid order. ``normalized`` describes each token (``true``: every token has L2
norm 1). :func:`load_features` refuses a token file unless the caller passes ``tokens=True`` (everything but the
multi-view target needs one vector per image); a token file never has ``text``. A ``(n, 1, dim)`` array is still
read as the 2-D features ``(n, dim)`` (some NICE/BraVL caches), never as one token.

Retrieval training wants L2-normalised targets; the generation prior wants raw (unnormalised) image features.
The reference ATM code stores both under the same file name (``atm.md`` §1.6, §6), which silently mixes them
up. :func:`load_features` checks what a file holds against what the caller expects and says how to fix it.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from eegvision import __version__
from eegvision.checks import show_list
from eegvision.store.concepts import ConceptTable
from eegvision.utils import atomic_path

META_KEYS = ("model", "pretrained", "layer", "transform", "normalized", "split", "prompt_template",
             "eegvision_version")
DEFAULT_PROMPT_TEMPLATE = "This picture is {concept}"
_NORM_TOL = 1e-3

__all__ = ["Features", "import_atm_features", "is_unit_norm", "load_features", "save_features", "split_from_name"]


@dataclass
class Features:
    """Image (and optionally text) features with their metadata.

    Attributes
    ----------
    image : torch.Tensor (n_images, dim), float32
    text : torch.Tensor (n_concepts, dim) or None
    metadata : dict of str
        The file's metadata strings, ``concepts`` excepted.
    path : Path or None
        The file they were read from.
    concepts : ConceptTable or None
        The concept table of the split (row j of ``text`` is its concept j), when the file records it.

    ``image`` is ``(n_images, n_tokens, dim)`` in a token file (:attr:`is_tokens`, module docstring).
    """

    image: torch.Tensor
    text: torch.Tensor | None = None
    metadata: dict = field(default_factory=dict)
    path: Path | None = None
    concepts: ConceptTable | None = None

    @property
    def dim(self) -> int:
        """The size of each row (of each token, in a token file)."""
        return int(self.image.shape[-1])

    @property
    def is_tokens(self) -> bool:
        """Whether the file holds token features ``(n_images, n_tokens, dim)`` (module docstring)."""
        return self.image.ndim == 3

    @property
    def token_layers(self) -> list[int] | None:
        """The layer of each token (the ``layers`` metadata) of a token file; None for 2-D features."""
        if not self.is_tokens:
            return None
        layers = self.metadata.get("layers")
        return [int(v) for v in json.loads(layers)] if layers else [0] * int(self.image.shape[1])

    @property
    def normalized(self) -> bool:
        """Whether the image rows are L2-normalised (from the metadata, else measured)."""
        flag = self.metadata.get("normalized")
        if flag in ("true", "false"):
            return flag == "true"
        return is_unit_norm(self.image)

    def __len__(self) -> int:
        return int(self.image.shape[0])


def is_unit_norm(x: torch.Tensor, tol: float = _NORM_TOL) -> bool:
    """True when every row of ``x`` has L2 norm 1 within ``tol``."""
    if x.numel() == 0:
        return False
    norms = x.detach().float().norm(dim=-1)
    return bool(torch.all((norms - 1).abs() < tol))


def _to_tensor(x, name: str, tokens: bool = False) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} features must be a tensor or array, got {type(x).__name__}")
    x = x.detach().cpu()
    if x.ndim == 3 and x.shape[1] == 1 and not tokens:  # (n, 1, dim) as in some NICE/BraVL caches
        x = x[:, 0]
    if x.ndim != (3 if tokens else 2):
        want = "3-D (rows, tokens, dim)" if tokens else "2-D (rows, dim)"
        raise ValueError(f"{name} features must be {want}, got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} features must be floating point, got {x.dtype}")
    return x.float().contiguous()


def save_features(path: str | os.PathLike, image, text=None, *, normalized: bool | None = None,
                  overwrite: bool = True, concepts: ConceptTable | None = None,
                  layers: list[int] | None = None, **meta) -> Path:
    """Write a feature file (safetensors) atomically.

    Parameters
    ----------
    path : path
        Target ``.safetensors`` file.
    image : tensor or array (n_images, dim), or (n_images, n_tokens, dim) for a token file
    text : tensor or array (n_concepts, dim), optional
        Must have the same ``dim`` as ``image``; not with token features.
    normalized : bool, optional
        Whether the image rows are L2-normalised. Measured from the data when omitted.
    overwrite : bool
        If False, an existing file raises :class:`FileExistsError`.
    concepts : ConceptTable, optional
        The split's concept table, stored as JSON under ``concepts`` (one row per ``text`` row when both are
        given).
    layers : list of int, optional
        Makes a token file: ``image`` is 3-D and ``layers[t]`` is the layer of token ``t`` (module docstring).
    **meta
        Metadata strings: ``model``, ``pretrained``, ``layer``, ``transform``, ``split``, ``prompt_template``
        and any extra key. Values are converted with ``str``; ``None`` becomes ``""``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another name or allow overwriting")
    img = _to_tensor(image, "image", tokens=layers is not None)
    if layers is not None:
        layers = [int(v) for v in layers]
        if len(layers) != img.shape[1]:
            raise ValueError(f"layers names the layer of each token: {img.shape[1]} tokens but {len(layers)} layers")
        if text is not None:
            raise ValueError("a token file holds image tokens only; write text features to a 2-D feature file")
        meta = {**meta, "kind": "tokens", "layers": json.dumps(layers)}
    tensors = {"image": img}
    if text is not None:
        txt = _to_tensor(text, "text")
        if txt.shape[1] != img.shape[1]:
            raise ValueError(f"text features have dim {txt.shape[1]} but image features dim {img.shape[1]}")
        tensors["text"] = txt
    if concepts is not None and text is not None and len(concepts) != len(tensors["text"]):
        raise ValueError(f"text features have {len(tensors['text'])} rows (one per concept) but the concept table has "
                         f"{len(concepts)} concepts; give the table of the split the prompts were made from")
    if normalized is None:
        normalized = is_unit_norm(img)
    elif normalized and not is_unit_norm(img):
        raise ValueError("normalized=True but the image rows are not unit-norm; normalise them first")
    metadata = {k: "" for k in META_KEYS}
    metadata.update({k: ("" if v is None else str(v)) for k, v in meta.items()})
    metadata["normalized"] = "true" if normalized else "false"
    metadata["eegvision_version"] = __version__
    if concepts is not None:
        metadata["concepts"] = json.dumps(concepts.to_json(), separators=(",", ":"))
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def split_from_name(path: Path) -> str:
    """The split a file name says (``training``, ``test``, ``validation``; ``train``/``val`` spelled out), else ``""``."""
    m = re.search(r"(?:^|[_.\-])(train|training|test|val|validation)(?=$|[_.\-])", path.stem.lower())
    return {"train": "training", "val": "validation"}.get(m.group(1), m.group(1)) if m else ""


def _read_atm_pt(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    from eegvision.tensorfiles import load_torch

    obj = load_torch(path, "Feature file")
    if isinstance(obj, torch.Tensor):
        return _to_tensor(obj, "image"), None
    if isinstance(obj, dict):
        img_key = next((k for k in ("img_features", "image_features", "image") if k in obj), None)
        if img_key is None:
            raise ValueError(
                f"{path} holds a dict with keys {show_list(sorted(obj))}; expected 'img_features' (and optionally "
                "'text_features') as in the ATM caches ViT-H-14_features_{train,test}.pt"
            )
        txt_key = next((k for k in ("text_features", "text") if k in obj), None)
        txt = _to_tensor(obj[txt_key], "text") if txt_key is not None else None
        return _to_tensor(obj[img_key], "image"), txt
    raise ValueError(f"{path} holds a {type(obj).__name__}; expected a tensor or a dict of tensors")


def load_features(path: str | os.PathLike, expect_normalized: bool | None = None,
                  expect_dim: int | None = None, expect_rows: int | None = None,
                  expect_concepts: ConceptTable | None = None, tokens: bool = False) -> Features:
    """Read a feature file and check it against what the caller needs.

    Parameters
    ----------
    path : path
        An eegvision ``.safetensors`` feature file. An ATM-style ``.pt`` (dict or tensor) or a ``.npy`` is
        also read, with its normalisation measured from the data.
    expect_normalized : bool, optional
        ``True`` for retrieval/contrastive training (unit-norm targets), ``False`` for the generation prior
        (raw CLIP features). ``None`` skips the check.
    expect_dim : int, optional
        Required embedding size (e.g. the encoder's ``n_outputs``).
    expect_rows : int, optional
        Required number of image rows (e.g. the number of conditions of the split).
    expect_concepts : ConceptTable, optional
        The concept table of the data split the features are used with (``store.concept_table(split)``); when
        the file records a table too, both must name the same concept at every index.
    tokens : bool
        Accept a token file (module docstring); by default one is refused, as one vector per image is needed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"feature file not found: {path}. Create one with `eegvision features IMAGES OUT --model ... "
            "--pretrained PATH` or import an ATM cache with `eegvision import-features ATM.pt OUT --normalize`."
        )
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from eegvision.tensorfiles import open_safetensors

        with open_safetensors(path, "Feature file", "Extract the features again with `eegvision features`."
                              ) as f:
            keys = set(f.keys())
            if "image" not in keys:
                raise ValueError(f"{path} has tensors {show_list(sorted(keys))} but no 'image'; it is not a feature file")
            meta = dict(f.metadata() or {})
            if meta.get("kind") == "tokens" and not tokens:
                raise ValueError(
                    f"{path} holds token features (image {tuple(f.get_slice('image').get_shape())}: images x tokens "
                    "x dim, the patch tokens of a vision tower) but one vector per image is needed here; only "
                    "training with a multi-view target (FitConfig.multi_view_target, `eegvision fit --multi-view`) "
                    "reads token files. Extract pooled features (`eegvision features ... --pooling cls`) instead.")
            image = f.get_tensor("image").float()
            text = f.get_tensor("text").float() if "text" in keys else None
    elif suffix in (".pt", ".pth"):
        image, text = _read_atm_pt(path)
        meta = {"source": str(path), "normalized": "true" if is_unit_norm(image) else "false",
                "split": split_from_name(path)}
    elif suffix == ".npy":
        image = _to_tensor(np.load(path, allow_pickle=False), "image")
        text = None
        meta = {"source": str(path), "normalized": "true" if is_unit_norm(image) else "false",
                "split": split_from_name(path)}
    else:
        raise ValueError(f"unknown feature file type {path.name!r}: use .safetensors (or an ATM .pt / .npy)")
    table = ConceptTable.from_json(meta.pop("concepts"), where=f"{path} metadata 'concepts'") \
        if meta.get("concepts") else None
    feats = Features(image=image, text=text, metadata=meta, path=path, concepts=table)

    if expect_normalized is not None and feats.normalized != expect_normalized:
        norms = image.norm(dim=1)
        holds = (f"holds {'L2-normalised' if feats.normalized else 'raw (unnormalised)'} image features "
                 f"(row norms {norms.min():.3g}..{norms.max():.3g}, model {meta.get('model') or 'unknown'})")
        if expect_normalized:
            fix = ("retrieval training expects normalised features: re-extract with `eegvision features ... "
                   "--normalize` (the default), or import with `eegvision import-features ATM.pt OUT --normalize`")
        else:
            fix = ("the generation prior expects raw CLIP image features: re-extract with `eegvision features ... "
                   "--no-normalize`; normalised features cannot be un-normalised (for ATM, use the unnormalised "
                   "cache, e.g. ViT-H-14_features_test_unnormalized_img.pt, with --no-normalize)")
        raise ValueError(f"{path} {holds}; {fix}.")
    if expect_dim is not None and feats.dim != expect_dim:
        raise ValueError(
            f"{path} holds features of size {feats.dim} (model {meta.get('model') or 'unknown'}) but {expect_dim} "
            f"is expected; use features from the same CLIP model as the encoder output (or set n_outputs={feats.dim})"
        )
    if expect_rows is not None and len(feats) != expect_rows:
        raise ValueError(
            f"{path} holds {len(feats)} image rows but the split has {expect_rows} conditions; the features must "
            f"come from the same split (metadata split={meta.get('split') or 'unknown'})"
        )
    if expect_concepts is not None and table is not None:
        table.check_matches(
            expect_concepts, f"feature file {path}", f"the data's {expect_concepts.split or 'split'} split",
            "Use features extracted from the image folder of that split (`eegvision features "
            f"{expect_concepts.split or 'SPLIT'}_images OUT ...`), or data whose concepts the features were made for.")
    return feats


def import_atm_features(pt_path: str | os.PathLike, out: str | os.PathLike, *, normalize: bool,
                        model: str | None = None, pretrained: str | None = None, split: str | None = None,
                        prompt_template: str = DEFAULT_PROMPT_TEMPLATE, layer: str = "final",
                        concepts: ConceptTable | None = None) -> Path:
    """Convert an ATM-style feature cache into an eegvision feature file.

    Parameters
    ----------
    pt_path : path
        ``torch.save`` of ``{'img_features': (n, d), 'text_features': (c, d)}`` (the ATM caches
        ``ViT-H-14_features_{train,test}.pt``) or of a plain tensor (image features only, as the Generation
        ``variables/`` files). Any embedding size. Read with ``weights_only=True`` (no code execution).
    out : path
        Output ``.safetensors``.
    normalize : bool
        Required, explicit: ``True`` L2-normalises image and text rows (retrieval); ``False`` stores them as
        they are (raw features for the generation prior). The stored ``normalized`` flag always reflects what
        the file really holds.
    model, pretrained, split, prompt_template, layer
        Metadata. ``model`` defaults to what an ATM cache name says (``ViT-H-14`` for
        ``ViT-H-14_features_test.pt``), else ``"unknown"``; ``pretrained`` to ``"unknown"``; ``split`` is guessed
        from the file name (``train``/``test``).
    concepts : ConceptTable, optional
        The concept table of the split the cache was made for (e.g. ``open_data(store).concept_table("test")``);
        ATM caches do not record one.
    """
    if not isinstance(normalize, bool):
        raise ValueError("normalize must be given explicitly as True or False (--normalize/--no-normalize)")
    pt_path = Path(pt_path)
    if not pt_path.is_file():
        raise FileNotFoundError(f"ATM feature file not found: {pt_path}")
    image, text = _read_atm_pt(pt_path)
    if normalize:
        image = torch.nn.functional.normalize(image, dim=1)
        text = torch.nn.functional.normalize(text, dim=1) if text is not None else None
    elif is_unit_norm(image):
        warnings.warn(
            f"{pt_path} already holds unit-norm image features, so --no-normalize cannot give raw features; "
            "the file is stored with normalized=true. The generation prior needs the unnormalised cache.",
            stacklevel=2,
        )
    named = re.match(r"(.+?)_features(?:_|$)", pt_path.stem)
    return save_features(
        out, image, text, model=model or (named.group(1) if named else "unknown"), pretrained=pretrained or "unknown",
        layer=layer,
        transform="unknown (imported from an ATM cache; the reference used RandomResizedCrop(224, scale=(0.9, 1)))",
        split=split if split is not None else split_from_name(pt_path), prompt_template=prompt_template,
        source=pt_path.name, concepts=concepts,
    )
