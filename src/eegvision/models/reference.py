"""Import checkpoints of the ATM reference code (``ncclab-sustech/EEG_Image_decode``) as eegvision modules.

:func:`load_reference_checkpoint` reads a ``torch.save(model.state_dict(), path)`` file safely
(``torch.load(weights_only=True)``; ``.safetensors`` too), recognises its layout from key names and
shapes, and returns the matching eegvision module in reference mode, loaded with ``strict=True``:

==============  =================================================  =========================================
kind            reference class                                    eegvision module
==============  =================================================  =========================================
``atms``        ``ATMS`` (``Retrieval/ATMS_retrieval.py``)          :class:`~.encoders.atms.ATMSEncoder`,
                                                                   ``mode="reference"``
``atms``        ``ATMS_50`` (``Alljoined/EEG_Image_decode``)       :class:`~.encoders.atms50.ATMS50Encoder`
``nice``        ``NICE`` (``Retrieval/contrast_retrieval.py``)      :class:`~.encoders.nice.NICEEncoder`
``eegproject``  UBP's ``EEGProject``                               :class:`~.encoders.eegproject.EEGProjectEncoder`
``projector``   ``Projector`` ("MLP", ``contrast_retrieval.py``)    :class:`~.encoders.projector.ProjectorEncoder`
``prior``       ``DiffusionPriorUNet`` (``Generation/diffusion_prior.py``)  :class:`~.prior.DiffusionPrior`
==============  =================================================  =========================================

What the files cannot tell is asked for, never guessed: the two ATM-S forward passes that share one
state-dict layout (no positional encoding up to commit ``22c84ad``, a sinusoidal one from ``61fc9c3``,
24 Dec 2025) need ``positional_encoding=``. A layout that is not one of the known ones is refused with
its key difference (missing, unexpected and shape-mismatched keys) to the closest known layout.
See ``docs/reference.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eegvision.models.encoders.atms import ATMSEncoder
from eegvision.models.encoders.atms50 import ATMS50Encoder
from eegvision.models.encoders.eegproject import EEGProjectEncoder
from eegvision.models.encoders.layers import tsconv_out_features
from eegvision.models.encoders.nice import NICEEncoder
from eegvision.models.encoders.projector import ProjectorEncoder
from eegvision.models.prior import REFERENCE_PRIOR_CONFIG, DiffusionPrior

REFERENCE_KINDS = ("atms", "nice", "eegproject", "projector", "prior")
#: ``positional_encoding`` values for the channel-token ATM-S and the reference commits that use them.
POSITIONAL_ENCODINGS = {"sinusoidal": "61fc9c3 (24 Dec 2025) and later",
                        "none": "22c84ad and earlier (all code before 24 Dec 2025)"}
#: The reference ``DiffusionPriorUNet``'s module names -> eegvision's (``DiffusionPrior.net``). Keyed by the
#: reference's names: a change of eegvision's prior defaults does not touch it (the layout is read off the file).
PRIOR_RENAMES = {
    "input_layer.": "net.input_layer.",
    "encode_time_embedding.": "net.enc_time.",
    "encode_cond_embedding.": "net.enc_cond.",
    "encode_layers.": "net.enc_layers.",
    "decode_time_embedding.": "net.dec_time.",
    "decode_cond_embedding.": "net.dec_cond.",
    "decode_layers.": "net.dec_layers.",
    "output_layer.": "net.output_layer.",
}
#: The reference ``Projector`` registers its stages twice: ``projector.i.*`` aliases ``<stage>.*``.
PROJECTOR_ALIASES = {"projector.0.": "input_layer.", "projector.1.": "blocks.", "projector.2.": "output_layer."}
#: Reference time window (250 Hz, 0-1 s): the default where a file's shapes allow several window lengths.
REFERENCE_N_TIMES = 250
_SHOWN = 6  # keys listed per group in a key-difference message


class ReferenceCheckpointError(ValueError):
    """A file that is not a readable state dict of a known reference layout."""


# ---------------------------------------------------------------------------------------------- reading
def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.pth``/``.pt`` (``torch.load(weights_only=True)``) or ``.safetensors`` file.

    A ``{"state_dict": ...}`` / ``{"model_state_dict": ...}`` / ``{"model": ...}`` wrapper is unwrapped and a
    ``module.`` prefix (DataParallel) removed. Any failure is one :class:`ReferenceCheckpointError` line that
    names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {str(path)!r} not found.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, truncated, not a torch file, or pickled objects other than tensors
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
        if "weights only" in text.lower() or "weights_only" in text.lower():
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            hint = ("it holds Python objects other than tensors" + (f" ({found.group(1)})" if found else "")
                    + "; save model.state_dict(), not the model, and no code from the file is run here")
        else:
            first = text.strip().splitlines()[0].split(". ")[0].rstrip(".") if text.strip() else "no details"
            hint = f"the file is corrupt, truncated or not a PyTorch checkpoint ({type(err).__name__}: {first[:120]})"
        raise ReferenceCheckpointError(f"Cannot read checkpoint {str(path)!r}: {hint}.") from None
    return _as_state_dict(obj, str(path))


def _as_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        what = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, Mapping) else type(obj).__name__
        raise ReferenceCheckpointError(
            f"{source} is not a state dict (name -> tensor): got {what}. Save the reference model with "
            "torch.save(model.state_dict(), path).")
    return {k.removeprefix("module."): v for k, v in obj.items()}


# ---------------------------------------------------------------------------------------------- key checks
def _shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def key_difference(got: Mapping[str, tuple], expected: Mapping[str, tuple]) -> str:
    """Describe how the key -> shape map ``got`` differs from ``expected`` ("" when equal)."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {tuple(got[k])} (expected {tuple(expected[k])})" for k in expected
              if k in got and tuple(got[k]) != tuple(expected[k])]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", shapes)):
        if keys:
            more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
            parts.append(f"{len(keys)} {label} key{'s' * (len(keys) != 1)}: {', '.join(keys[:_SHOWN])}{more}")
    return "; ".join(parts)


def _load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], layout: str, source: str) -> nn.Module:
    diff = key_difference(_shapes(state), _shapes(model.state_dict()))
    if diff:
        raise ReferenceCheckpointError(f"{source} is not a {layout} state dict: {diff}.")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _dim(state: Mapping[str, torch.Tensor], key: str, axis: int, default: int) -> int:
    """Size of ``state[key]`` along ``axis``, or ``default`` when the key is absent (the diff then says so)."""
    value = state.get(key)
    return int(value.shape[axis]) if value is not None and value.ndim > axis else default


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of ``prefix<i>.`` entries of a ModuleList / Sequential."""
    indices = {k[len(prefix):].split(".", 1)[0] for k in state if k.startswith(prefix)}
    return len([i for i in indices if i.isdigit()])


def _check_given(name: str, given: int | None, found: int, where: str) -> int:
    if given is not None and given != found:
        raise ReferenceCheckpointError(f"The checkpoint holds {name}={found} ({where}), but {name}={given} "
                                       "was given; leave it out or give the value the model was trained with.")
    return found


def guess_reference_kind(state: Mapping[str, torch.Tensor]) -> str | None:
    """The reference model kind a state dict looks like, from distinctive key prefixes (None if none)."""
    keys = set(state)
    if any(k.startswith(("encoder.enc_embedding.", "attention_model.")) for k in keys):
        return "atms"
    if any(k.startswith(("encode_time_embedding.", "net.enc_time.", "hidden_layers.")) for k in keys):
        return "prior"
    if any(k.startswith(("input_layer.5.", "projector.0.")) for k in keys):
        return "projector"
    if any(k.startswith("enc_eeg.0.tsconv.") for k in keys):
        return "nice"
    if any(k.startswith("model.0.") for k in keys):
        return "eegproject"
    return None


# ---------------------------------------------------------------------------------------------- ATM-S
def _atms_model(state: Mapping[str, torch.Tensor], positional_encoding: bool,
                subject_names: list[str] | None) -> ATMSEncoder:
    """The channel-token ATM-S with the sizes read off ``state`` (reference sizes where a key is absent)."""
    p = "encoder.enc_embedding."
    n_times = _dim(state, p + "value_embedding.weight", 1, REFERENCE_N_TIMES)
    options = dict(
        n_chans=_dim(state, "enc_eeg.0.tsconv.4.weight", 2, 63), n_times=n_times,
        n_outputs=_dim(state, "proj_eeg.2.weight", 0, 1024),
        d_model=_dim(state, p + "value_embedding.weight", 0, n_times),
        d_ff=_dim(state, "encoder.encoder.attn_layers.0.conv1.weight", 0, 256),
        e_layers=max(1, _count(state, "encoder.encoder.attn_layers.")),
        n_filters=_dim(state, "enc_eeg.0.tsconv.0.weight", 0, 40),
    )
    names = list(subject_names) if subject_names is not None else None
    return ATMSEncoder(mode="reference", positional_encoding=positional_encoding, subject_names=names,
                       n_subjects=len(names) if names else 10, **options)


def _atms50_model(state: Mapping[str, torch.Tensor]) -> ATMS50Encoder:
    a = "attention_model.transformer_encoder.layers.0."
    return ATMS50Encoder(
        n_chans=_dim(state, a + "self_attn.out_proj.weight", 0, 63),
        n_times=_dim(state, "subject_wise_linear.0.weight", 1, REFERENCE_N_TIMES),
        n_outputs=_dim(state, "proj_eeg.2.weight", 0, 1024),
        n_subject_linears=max(1, _count(state, "subject_wise_linear.")),
        dim_feedforward=_dim(state, a + "linear1.weight", 0, 2048),
        max_len=_dim(state, "attention_model.pos_encoder.pe", 0, 5000),
        n_filters=_dim(state, "enc_eeg.0.tsconv.0.weight", 0, 40),
    )


def identify_atms_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Recognise an ATM-S state dict by its key names and shapes.

    Returns
    -------
    str
        ``"itransformer"``: the channel-token ATM-S of ``ncclab-sustech/EEG_Image_decode`` (``ATMS``); its
        keys are the same with and without positional encoding (``22c84ad`` / ``61fc9c3``), so they cannot
        tell which forward pass the checkpoint needs. ``"atms50"``: the temporal-attention ``ATMS_50`` of
        ``Alljoined/EEG_Image_decode`` (``3dd2d62``).

    Raises
    ------
    ReferenceCheckpointError
        For any other layout, with the key difference to the closest known one.
    """
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    got = _shapes(state)
    candidates = {"itransformer": _shapes(_atms_model(state, True, None).state_dict()),
                  "atms50": _shapes(_atms50_model(state).state_dict())}
    for layout, expected in candidates.items():
        if got == expected:
            return layout
    closest = max(candidates, key=lambda name: len(set(got) & set(candidates[name])))
    label = {"itransformer": "the reference ATMS (channel-token iTransformer, ncclab-sustech 22c84ad/61fc9c3)",
             "atms50": "ATMS_50 (temporal attention, Alljoined 3dd2d62)"}[closest]
    hint = ""
    if "encoder.enc_embedding.value_embedding.0.weight" in got:
        hint = (" It looks like the joint-training ATMS (ATMS_retrieval_joint_train.py: one value embedding per "
                "subject), which eegvision does not implement.")
    raise ReferenceCheckpointError(
        f"Unknown ATM-S layout: {key_difference(got, candidates[closest])} (compared with {label}, the closest "
        f"known layout).{hint} Known layouts: {', '.join(candidates)}.")


def _positional_flag(positional_encoding: str | None, source: str) -> bool:
    if positional_encoding is None:
        choices = "; ".join(f"'{k}' for code {v}" for k, v in POSITIONAL_ENCODINGS.items())
        raise ReferenceCheckpointError(
            f"{source} is a channel-token ATM-S state dict, whose keys are the same whether or not the model adds a "
            f"positional encoding: pass positional_encoding= ({choices}). The file cannot tell; see "
            "docs/reference.md.")
    if positional_encoding not in POSITIONAL_ENCODINGS:
        raise ValueError(f"positional_encoding must be one of {sorted(POSITIONAL_ENCODINGS)}, "
                         f"got {positional_encoding!r}.")
    return positional_encoding == "sinusoidal"


# ---------------------------------------------------------------------------------------------- other kinds
def drop_projector_aliases(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the reference ``Projector``'s ``projector.{0,1,2}.*`` keys, which repeat its stages' tensors.

    Raises
    ------
    ReferenceCheckpointError
        If an alias differs from the tensor it should repeat (the file was edited or is not the reference's).
    """
    state = dict(state_dict)
    for key in [k for k in state if k.startswith(tuple(PROJECTOR_ALIASES))]:
        alias = next(a for a in PROJECTOR_ALIASES if key.startswith(a))
        canonical = PROJECTOR_ALIASES[alias] + key[len(alias):]
        if canonical not in state:
            continue  # left in place: the strict load reports it as unexpected
        if state[canonical].shape != state[key].shape or not torch.equal(state[canonical], state[key]):
            raise ReferenceCheckpointError(
                f"Alias key {key!r} differs from {canonical!r}; in the reference Projector they are one tensor. "
                "The checkpoint was modified after saving; re-save it from the model.")
        del state[key]
    return state


def prior_state_from_reference(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a reference ``DiffusionPriorUNet`` state dict to :class:`~.prior.DiffusionPrior` keys."""
    out = {}
    for key, value in state_dict.items():
        prefix = next((p for p in PRIOR_RENAMES if key.startswith(p)), None)
        out[PRIOR_RENAMES[prefix] + key[len(prefix):] if prefix else key] = value
    return out


def _prior_model(state: Mapping[str, torch.Tensor]) -> DiffusionPrior:
    """A DiffusionPrior with the U-Net sizes read off a reference state dict (reference sizes if absent)."""
    ref = REFERENCE_PRIOR_CONFIG
    n_steps = _count(state, "encode_layers.")
    hidden = [_dim(state, "input_layer.0.weight", 0, ref["architecture_options"]["hidden_dims"][0])]
    hidden += [_dim(state, f"encode_layers.{i}.0.weight", 0, 0) for i in range(n_steps)]
    if n_steps == 0 or 0 in hidden:
        hidden = list(ref["architecture_options"]["hidden_dims"])
    options = {"hidden_dims": hidden, "time_embed_dim": _dim(state, "encode_time_embedding.0.linear_1.weight", 1,
                                                             ref["architecture_options"]["time_embed_dim"]),
               "dropout": ref["architecture_options"]["dropout"]}
    config = {**ref, "architecture_options": options,
              "embed_dim": _dim(state, "input_layer.0.weight", 1, ref["embed_dim"]),
              "cond_dim": _dim(state, "encode_cond_embedding.0.weight", 1, ref["cond_dim"])}
    return DiffusionPrior(**config)


def _nice_model(state, n_chans, n_times, source) -> NICEEncoder:
    n_filters = _dim(state, "enc_eeg.0.tsconv.0.weight", 0, 40)
    found_chans = _dim(state, "enc_eeg.0.tsconv.4.weight", 2, 63)
    n_chans = _check_given("n_chans", n_chans, found_chans, "enc_eeg.0.tsconv.4.weight")
    n_features = _dim(state, "proj_eeg.0.weight", 1, tsconv_out_features(REFERENCE_N_TIMES, n_filters))
    n_times = _window_for(n_features, n_times, n_filters, source)
    return NICEEncoder(n_chans=n_chans, n_times=n_times, n_outputs=_dim(state, "proj_eeg.2.weight", 0, 1024),
                       mode="reference" if "logit_scale" in state else "fixed", n_filters=n_filters)


def _window_for(n_features: int, n_times: int | None, n_filters: int, source: str) -> int:
    """The time-window length behind a TSConv feature size (several lengths give the same size)."""
    fits = [t for t in range(75, 20_001) if tsconv_out_features(t, n_filters) == n_features]
    if n_times is not None:
        if n_times not in fits:
            raise ReferenceCheckpointError(f"n_times={n_times} does not fit {source}: its TSConv output has "
                                           f"{n_features} features, which n_times in {fits[:5]} give.")
        return n_times
    if REFERENCE_N_TIMES in fits:
        return REFERENCE_N_TIMES
    if not fits:
        raise ReferenceCheckpointError(f"{source}: no time window gives {n_features} TSConv features.")
    raise ReferenceCheckpointError(f"{source} fits n_times in {fits}: pass n_times= (the samples per epoch "
                                   "the model was trained on).")


def _eegproject_model(state, n_chans, n_times, source) -> EEGProjectEncoder:
    n_in = _dim(state, "model.0.weight", 1, 63 * REFERENCE_N_TIMES)
    if n_chans is None and n_times is None:
        n_times = REFERENCE_N_TIMES if n_in % REFERENCE_N_TIMES == 0 else None
        if n_times is None:
            raise ReferenceCheckpointError(f"{source} takes {n_in} = channels x samples inputs: pass n_chans= "
                                           "or n_times=.")
    if n_chans is None:
        n_chans = n_in // n_times
    if n_times is None:
        n_times = n_in // n_chans
    if n_chans * n_times != n_in:
        raise ReferenceCheckpointError(f"{source} takes {n_in} inputs, not n_chans x n_times = "
                                       f"{n_chans} x {n_times}.")
    return EEGProjectEncoder(n_chans=n_chans, n_times=n_times, n_outputs=_dim(state, "model.2.weight", 0, 1024),
                             logit_scale="raw" if "logit_scale" in state else None)


def _projector_model(state) -> ProjectorEncoder:
    return ProjectorEncoder(
        n_chans=_dim(state, "input_layer.5.weight", 0, 63), n_times=_dim(state, "input_layer.0.weight", 0, 250),
        n_outputs=_dim(state, "output_layer.1.weight", 0, 1024),
        mode="reference" if "logit_scale" in state else "fixed",
        hidden_chans=_dim(state, "input_layer.6.weight", 0, 64), hidden_times=_dim(state, "input_layer.1.weight", 0, 1024),
        n_hidden_layers=_count(state, "blocks.") if any(k.startswith("blocks.") for k in state) else 2,
    )


# ---------------------------------------------------------------------------------------------- entry points
def from_reference_state_dict(state_dict: Mapping[str, torch.Tensor], kind: str, *,
                              positional_encoding: str | None = None, n_chans: int | None = None,
                              n_times: int | None = None, subject_names: list[str] | None = None,
                              source: str = "The state dict") -> nn.Module:
    """Build the eegvision module for a reference state dict already in memory.

    Same arguments as :func:`load_reference_checkpoint` (``source`` names the dict in messages).
    """
    if kind not in REFERENCE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(REFERENCE_KINDS)}; got {kind!r}.")
    state = _as_state_dict(state_dict, source)
    guessed = guess_reference_kind(state)
    try:
        return _build(state, kind, positional_encoding, n_chans, n_times, subject_names, source)
    except ReferenceCheckpointError as err:
        if guessed is not None and guessed != kind:
            raise ReferenceCheckpointError(f"{err} It looks like a {guessed!r} checkpoint: try kind={guessed!r}.") \
                from None
        raise


def _build(state, kind, positional_encoding, n_chans, n_times, subject_names, source) -> nn.Module:
    if kind == "atms":
        layout = identify_atms_layout(state)
        if layout == "atms50":
            if positional_encoding not in (None, "sinusoidal"):
                raise ReferenceCheckpointError(
                    f"{source} is an ATMS_50 (temporal attention) state dict, whose forward pass always adds a "
                    f"sinusoidal encoding over time; positional_encoding={positional_encoding!r} does not apply.")
            model: nn.Module = _atms50_model(state)
        else:
            model = _atms_model(state, _positional_flag(positional_encoding, source), subject_names)
        _check_given("n_chans", n_chans, model.n_chans, "the spatial convolution")
        _check_given("n_times", n_times, model.n_times, "the input layer")
        return _load_strict(model, state, f"{layout} ATM-S", source)
    if positional_encoding is not None:
        raise ValueError(f"positional_encoding applies to kind='atms' only, not {kind!r}.")
    if kind == "prior":
        if any(k.startswith("hidden_layers.") for k in state):
            raise ReferenceCheckpointError(f"{source} is the reference's flat DiffusionPrior (hidden_layers.*), "
                                           "which eegvision does not implement; only DiffusionPriorUNet imports.")
        return _load_strict(_prior_model(state), prior_state_from_reference(state), "DiffusionPriorUNet", source)
    if kind == "projector":
        state = drop_projector_aliases(state)
        return _load_strict(_projector_model(state), state, "Projector", source)
    if kind == "nice":
        return _load_strict(_nice_model(state, n_chans, n_times, source), state, "NICE", source)
    model = _eegproject_model(state, n_chans, n_times, source)
    ubp = {k.replace("model.1.f.", "model.1.fn.", 1): v for k, v in state.items()}
    return _load_strict(model, ubp, "EEGProject", source)


def load_reference_checkpoint(path: str | os.PathLike, kind: str, *, positional_encoding: str | None = None,
                              n_chans: int | None = None, n_times: int | None = None,
                              subject_names: list[str] | None = None,
                              map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a checkpoint saved by the reference code into the matching eegvision module.

    Parameters
    ----------
    path : path-like
        ``torch.save(model.state_dict(), path)`` output (``.pth``/``.pt``; ``.safetensors`` too), read with
        ``torch.load(weights_only=True)``: no code in the file runs.
    kind : {"atms", "nice", "eegproject", "projector", "prior"}
        Which reference model saved it (see the module docstring).
    positional_encoding : {"sinusoidal", "none"}, optional
        Required for a channel-token ATM-S (``ATMS``): ``"sinusoidal"`` for code from ``61fc9c3`` (24 Dec
        2025) on, ``"none"`` for ``22c84ad`` and earlier. The file has the same keys either way. Must be left
        out (or ``"sinusoidal"``) for ``ATMS_50`` and for the other kinds.
    n_chans, n_times : int, optional
        Needed only where the shapes do not fix them (NICE: several window lengths give one TSConv size, 250
        is taken when it fits; EEGProject: ``channels x samples`` inputs, ``n_times=250`` is taken when it
        divides). Elsewhere they are read off the file and, when given, checked.
    subject_names : list of str, optional
        ATM-S (``ATMS``): the reference subject name of each eegvision subject id (``["sub-08"]`` for a
        model used on sub-08); default ``sub-01`` ... ``sub-10`` for ids 0-9. Rows are picked as in the
        reference (trailing digits; ``sub-10`` falls back to the shared token for the whole batch).
    map_location : str or torch.device
        Device of the returned module.

    Returns
    -------
    torch.nn.Module
        An :class:`~eegvision.models.encoders.base.EEGEncoder` in reference mode, or a
        :class:`~eegvision.models.prior.DiffusionPrior` with the reference's sizes and ``clip_sample=True``;
        loaded with ``strict=True``, in eval mode.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ReferenceCheckpointError
        Unreadable file (one line naming it), a layout that is not a known one (with the key difference), a
        missing ``positional_encoding`` for ``ATMS``, or sizes that contradict ``n_chans``/``n_times``.
    """
    state = read_state_dict(path)
    model = from_reference_state_dict(state, kind, positional_encoding=positional_encoding, n_chans=n_chans,
                                      n_times=n_times, subject_names=subject_names,
                                      source=f"Checkpoint {str(path)!r}")
    return model.to(map_location)
