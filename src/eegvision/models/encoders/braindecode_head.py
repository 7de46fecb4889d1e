"""Any braindecode model as an embedding encoder (``"braindecode:EEGNet"``, ``"braindecode:Labram"``...).

The backbone is built with braindecode's own signal parameters (``n_chans``, ``n_times``, ``sfreq``,
``n_outputs``) so MEG and channel subsets work wherever the architecture allows. braindecode 1.x
heads end in a plain linear layer (``final_layer``) — no log-softmax, unlike the 0.8 wrappers in
ATM's ``contrast_retrieval.py`` (``add_log_softmax=True``, which turned the "embedding" into a
probability vector and handicapped those baselines).

Head
----
``head=None``: the backbone's ``final_layer`` outputs ``n_outputs`` directly.
``head="projector"``: the backbone outputs ``feature_dim`` values (default ``n_outputs``), followed
by the NICE/ATM projector (Linear + residual MLP + LayerNorm) to ``n_outputs``.

Subject conditioning
--------------------
With ``n_subjects > 1`` (or ``subject_embedding=True``) a learned per-subject vector is *added* to the
backbone output (before the projector, if any); unseen subjects (id ``-1``/``>= n_subjects``, or no ids)
get a shared vector. All vectors start at zero, so a fresh model is subject-agnostic. With
``n_subjects == 1`` subject ids are ignored.

Pretrained weights
------------------
``pretrained=PATH`` loads a local state dict (``.safetensors``, or ``.pt``/``.pth``/``.bin`` read with
``weights_only=True``) into the backbone before training; nothing is downloaded. Tensors whose shape
differs from the model's (typically the classification head) are skipped with a warning.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eegvision.checks import check_choice, check_name
from eegvision.models.encoders.base import EEGEncoder
from eegvision.models.encoders.layers import ProjectionHead, SubjectEmbedding

PREFIX = "braindecode:"

#: Hyper-parameters of ATM's baseline wrappers (``contrast_retrieval.py``, braindecode 0.8.1),
#: translated to braindecode 1.x names, *without* their ``add_log_softmax=True``. Selected with
#: ``preset="atm"``; explicit ``model_kwargs`` override them.
ATM_BASELINE_KWARGS: dict[str, dict[str, Any]] = {
    "EEGNet": {"final_conv_length": "auto", "pool_mode": "mean", "F1": 8, "D": 20, "F2": 160,
               "kernel_length": 4, "drop_prob": 0.25},
    "EEGConformer": {"n_filters_time": 40, "filter_time_length": 10, "pool_time_length": 25,
                     "pool_time_stride": 5, "drop_prob": 0.25, "num_layers": 2, "num_heads": 1,
                     "att_drop_prob": 0.5},
    "EEGITNet": {"drop_prob": 0.4},
    "ShallowFBCSPNet": {"n_filters_time": 20, "filter_time_length": 20, "n_filters_spat": 20,
                        "pool_time_length": 25, "pool_time_stride": 5, "final_conv_length": "auto",
                        "pool_mode": "mean", "split_first_layer": True, "batch_norm": True,
                        "batch_norm_alpha": 0.1, "drop_prob": 0.5},
    "ATCNet": {"conv_block_n_filters": 8, "conv_block_kernel_length_1": 32,
               "conv_block_kernel_length_2": 8, "conv_block_pool_size_1": 4, "conv_block_pool_size_2": 3,
               "conv_block_depth_mult": 2, "conv_block_dropout": 0.3, "n_windows": 5, "head_dim": 4,
               "num_heads": 2, "att_drop_prob": 0.5, "tcn_depth": 2, "tcn_kernel_size": 4,
               "tcn_drop_prob": 0.3, "tcn_activation": "torch.nn.ELU", "concat": False,
               "max_norm_const": 0.25},
}
_TYPE_STRING = re.compile(r"^(torch\.nn|braindecode)(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _import_models_util() -> Any:
    """``braindecode.models.util``, imported without MNE's montage FutureWarning (raised inside braindecode at
    import, about a name braindecode uses; nothing a user can act on)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Montage name .* is deprecated", category=FutureWarning)
        return importlib.import_module("braindecode.models.util")


@lru_cache(maxsize=1)
def braindecode_model_names() -> tuple[str, ...]:
    """Names of the braindecode model classes (sorted)."""
    util = _import_models_util()
    _init_models_dict, models_dict = util._init_models_dict, util.models_dict

    if not models_dict:
        _init_models_dict()
    return tuple(sorted(models_dict))


def _model_class(model: str) -> type[nn.Module]:
    return _import_models_util()._get_model_class(model)


def _resolve_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn import strings such as ``"torch.nn.ELU"`` into classes (options must stay JSON-able)."""
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, str) and _TYPE_STRING.match(value):
            module, _, attr = value.rpartition(".")
            try:
                value = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                pass  # an ordinary string option
        out[key] = value
    return out


def load_local_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a local ``.safetensors`` / ``.pt`` / ``.pth`` / ``.bin`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Pretrained weights not found: {str(path)!r}. Pass the path of a local .safetensors or "
            ".pt/.pth file (nothing is downloaded)."
        )
    from eegvision.tensorfiles import load_safetensors, load_torch

    if path.suffix == ".safetensors":
        return load_safetensors(path, "Pretrained weights")
    state = load_torch(path, "Pretrained weights")
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} does not hold a state dict (got {type(state).__name__}).")
    return state


class BraindecodeEncoder(EEGEncoder):
    """A braindecode model with an embedding head.

    Parameters
    ----------
    n_chans, n_times, n_outputs, sfreq, n_subjects
        Signal parameters, passed to braindecode under the same names.
    model : str
        braindecode class name, e.g. ``"EEGNet"``, ``"ShallowFBCSPNet"``, ``"EEGConformer"``,
        ``"ATCNet"``, ``"EEGITNet"``, ``"Labram"``.
    head : {None, "projector"}
        See the module docstring.
    feature_dim : int, optional
        Backbone output size when ``head="projector"`` (default ``n_outputs``).
    proj_dropout : float
        Dropout of the projector head (0.5).
    subject_embedding : bool, optional
        Add per-subject vectors (default: ``n_subjects > 1``).
    pretrained : str, optional
        Local state-dict file loaded into the backbone (see the module docstring).
    ch_names : list of str, optional
        Channel names of the input, passed to backbones whose ``forward`` takes ``ch_names`` (Labram
        maps them onto its 128-channel layout; all 63 THINGS-EEG2 names are in it).
    preset : {None, "atm"}
        ``"atm"``: start from the hyper-parameters ATM used for this baseline
        (:data:`ATM_BASELINE_KWARGS`; EEGNet, EEGConformer, EEGITNet, ShallowFBCSPNet, ATCNet).
    model_kwargs : dict, optional
        Extra keyword arguments of the braindecode class (JSON-able; classes as import strings such as
        ``"torch.nn.ELU"``).
    """

    name = "braindecode"
    has_variants = True
    head_modules = ("head",)  # without a projector head: the backbone's final_layer (module_groups)
    encoder_modules = ("backbone",)

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1, *, model: str = "EEGNet", head: str | None = None,
                 feature_dim: int | None = None, proj_dropout: float = 0.5,
                 subject_embedding: bool | None = None, pretrained: str | None = None,
                 ch_names: list[str] | None = None, preset: str | None = None,
                 model_kwargs: dict[str, Any] | None = None):
        super().__init__(n_chans, n_times, n_outputs, sfreq, n_subjects)
        names = braindecode_model_names()
        check_name("Model", model, names, "braindecode (eegvision.models.list_models() lists them)")
        check_choice("head", head, (None, "projector"))
        check_choice("preset", preset, (None, "atm"))
        if preset == "atm" and model not in ATM_BASELINE_KWARGS:
            raise ValueError(f"preset='atm' exists for {sorted(ATM_BASELINE_KWARGS)}, not {model!r}.")
        base = dict(ATM_BASELINE_KWARGS[model]) if preset == "atm" else {}
        model_kwargs = {**base, **dict(model_kwargs or {})}
        given_kwargs = dict(model_kwargs)
        clash = sorted(set(model_kwargs) & {"n_chans", "n_times", "sfreq", "n_outputs"})
        if clash:
            raise ValueError(f"Pass {clash} as encoder arguments, not inside model_kwargs.")
        feature_dim = int(feature_dim or n_outputs) if head == "projector" else n_outputs
        cls = _model_class(model)
        signal = {"n_chans": n_chans, "n_times": n_times, "sfreq": sfreq, "n_outputs": feature_dim}
        accepted = inspect.signature(cls.__init__).parameters
        signal = {k: v for k, v in signal.items() if k in accepted}
        try:
            self.backbone = cls(**signal, **_resolve_kwargs(model_kwargs))
        except (ValueError, RuntimeError, TypeError) as err:
            raise ValueError(
                f"braindecode {model} cannot be built for n_chans={n_chans}, n_times={n_times}, "
                f"sfreq={sfreq} with {model_kwargs or 'default options'}: {err}"
            ) from err
        if ch_names is not None and len(ch_names) != n_chans:
            raise ValueError(f"ch_names has {len(ch_names)} names but n_chans={n_chans}.")
        forward_params = inspect.signature(self.backbone.forward).parameters
        self._forward_kwargs = ({"ch_names": list(ch_names)}
                                if ch_names is not None and "ch_names" in forward_params else {})
        self.head = ProjectionHead(feature_dim, n_outputs, proj_dropout) if head == "projector" else None
        use_subjects = n_subjects > 1 if subject_embedding is None else bool(subject_embedding)
        self.subject_embedding = (SubjectEmbedding(n_subjects, feature_dim, zero_init=True)
                                  if use_subjects else None)
        if pretrained is not None:
            self.load_backbone_weights(pretrained)
        self.name = f"{PREFIX}{model}"  # the registry name, e.g. "braindecode:EEGNet"
        self._set_config(head=head, feature_dim=feature_dim if head else None,
                         proj_dropout=proj_dropout, subject_embedding=use_subjects,
                         pretrained=None if pretrained is None else str(pretrained),
                         ch_names=None if ch_names is None else list(ch_names), preset=None,
                         model_kwargs=given_kwargs)

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        """The braindecode class names (``braindecode:<variant>``)."""
        return braindecode_model_names()

    @classmethod
    def variant_options(cls, variant: str) -> dict[str, Any]:
        """``braindecode:EEGNet`` -> ``{"model": "EEGNet"}``."""
        if not variant:
            raise ValueError(f"Name a braindecode model after {PREFIX!r}, e.g. 'braindecode:EEGNet'.")
        return {"model": variant}

    def config_for_subjects(self, n_subjects: int) -> dict[str, Any]:
        """The config with ``n_subjects`` subject vectors (switched on) and no ``pretrained`` file to reload."""
        config = super().config_for_subjects(n_subjects)
        config["subject_embedding"] = True
        config.pop("pretrained", None)
        return config

    def module_groups(self) -> dict[str, list[str]]:
        """As :meth:`EEGEncoder.module_groups`; without a projector the head is the backbone's ``final_layer``,
        and ``attention`` is every backbone submodule named ``attn``, ``self_attn`` or ``*attention*``."""
        groups = super().module_groups()
        if self.head is None:
            groups["head"] = [n for n, _ in self.named_modules() if n == "backbone.final_layer"]
        attention = []
        for name, _ in self.backbone.named_parameters():
            parts = name.split(".")
            hit = next((i for i, p in enumerate(parts) if p in ("attn", "self_attn") or "attention" in p), None)
            if hit is not None:
                prefix = "backbone." + ".".join(parts[: hit + 1])
                under_head = any(prefix == h or prefix.startswith(h + ".") for h in groups["head"])
                if not under_head and prefix not in attention:
                    attention.append(prefix)
        groups["attention"] = attention
        return groups

    def load_backbone_weights(self, path: str | Path) -> list[str]:
        """Load a local state dict into the backbone; returns the keys that were skipped."""
        state = load_local_state_dict(path)
        own = self.backbone.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not usable:
            raise ValueError(
                f"None of the {len(state)} tensors in {str(path)!r} match braindecode "
                f"{type(self.backbone).__name__} (e.g. {sorted(state)[:3]} vs {sorted(own)[:3]})."
            )
        skipped = sorted(set(state) - set(usable))
        self.backbone.load_state_dict(usable, strict=False)
        if skipped:
            warnings.warn(f"Skipped {len(skipped)} pretrained tensors with other names or shapes "
                          f"(e.g. the head): {skipped[:5]}", stacklevel=2)
        return skipped

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        features = self.backbone(x, **self._forward_kwargs)
        if isinstance(features, (tuple, list)):
            features = features[0]
        features = features.reshape(x.shape[0], -1)  # (B, feature_dim)
        if self.subject_embedding is not None:
            features = features + self.subject_embedding(subject_ids, x.shape[0])[:, 0]
        return features if self.head is None else self.head(features)
