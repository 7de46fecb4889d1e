"""Common base of every eegvision encoder: signal parameters, ``.config``, input checks, parameter
groups, registration by name, saving and loading.

Registration
------------
Every subclass that sets a class attribute ``name`` is recorded in :data:`ENCODER_CLASSES` when it
is defined (importing :mod:`eegvision.models.encoders` defines them all), so an encoder can be
rebuilt from its ``.config`` (:meth:`EEGEncoder.from_config`) and from a saved directory
(:meth:`EEGEncoder.from_pretrained`) without the user-facing registry of
:mod:`eegvision.models.registry`, which builds on this one. A *family* (``has_variants = True``)
is named ``family:variant``: ``"braindecode:EEGNet"`` is :class:`BraindecodeEncoder` with
``model="EEGNet"`` (:meth:`EEGEncoder.variant_options`).

Parameter groups
----------------
Each encoder names the submodules of its parts (:meth:`EEGEncoder.module_groups`): ``head`` (the
layers that map features to the embedding), ``encoder`` (the feature extractor: convolutions or a
backbone), ``attention`` (transformer blocks) and ``subject`` (its :class:`SubjectEmbedding`
tables). Fine-tuning freezes by these names (:mod:`eegvision.training.freeze`).

Input whitening
---------------
Any encoder can carry a fixed channel-whitening matrix :math:`W` (``n_chans x n_chans``, a buffer named
``whitener``, set with :meth:`EEGEncoder.set_whitening`): :meth:`EEGEncoder.forward` multiplies the channel axis
of every input by it before :meth:`~EEGEncoder.embed`, so training, validation, test and any later embedding of
new data see the same whitening. Its kind (``"mvnn"``) is recorded in ``.config`` under ``"whitening"``, so
:meth:`EEGEncoder.from_config` rebuilds the buffer and :meth:`EEGEncoder.from_pretrained` loads its values with
the weights. The matrix itself is estimated by whoever trains the encoder (:mod:`eegvision.training.whitening`).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from eegvision.checks import check_choice, check_finite, check_names, check_shape
from eegvision.models.encoders.checkpoint import (
    load_checkpoint_weights,
    read_checkpoint_config,
    write_checkpoint,
)
from eegvision.models.encoders.layers import SubjectEmbedding, check_subject_ids

#: The constructor arguments every encoder shares; the others are its options.
SIGNAL_PARAMETERS = ("n_chans", "n_times", "n_outputs", "sfreq", "n_subjects")

#: The kinds of input whitening an encoder can record (:meth:`EEGEncoder.set_whitening`).
WHITENING_KINDS = ("mvnn",)
#: The config key and buffer name of the input whitening.
WHITENING_KEY, WHITENER_BUFFER = "whitening", "whitener"

#: Encoder classes by registry name (or family name), filled as each subclass is defined.
ENCODER_CLASSES: dict[str, type[EEGEncoder]] = {}


def encoder_class(name: str) -> tuple[type[EEGEncoder], dict[str, Any]]:
    """The class registered for the exact registry ``name`` and the options the name implies.

    ``"atms"`` gives ``(ATMSEncoder, {})``, ``"braindecode:EEGNet"`` gives
    ``(BraindecodeEncoder, {"model": "EEGNet"})``. For names as users type them (aliases, case,
    bare braindecode class names) use :func:`eegvision.models.registry.resolve_name`.
    """
    family, _, variant = str(name).partition(":")
    cls = ENCODER_CLASSES.get(family)
    if cls is None:
        raise ValueError(f"No encoder is registered under {family!r} (from the name {name!r}); registered: "
                         f"{', '.join(sorted(ENCODER_CLASSES))}. Import the module that defines it, or see "
                         "eegvision.models.list_models().")
    return cls, cls.variant_options(variant)


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def wrapped_groups(base: nn.Module) -> dict[str, list[str]]:
    """The parameter groups of an encoder that wraps ``base`` (as its attribute ``base``): ``base``'s groups with
    their names prefixed by ``base.``; the wrapper adds its own modules to them."""
    groups: dict[str, list[str]] = {"head": [], "encoder": [], "attention": [], "subject": []}
    for group, names in base.module_groups().items():
        groups.setdefault(group, []).extend(f"base.{n}" for n in names)
    return groups


class EEGEncoder(nn.Module):
    """Base class: maps ``(batch, n_chans, n_times)`` EEG/MEG to ``(batch, n_outputs)`` embeddings.

    Subclasses set ``name`` (which registers them, see the module docstring), call
    ``super().__init__(...)`` with the braindecode signal parameters, build their layers, record
    every constructor argument with :meth:`_set_config`, implement :meth:`embed` (the forward pass
    on validated input) and name their parts in ``head_modules``, ``encoder_modules`` and
    ``attention_modules``.

    Parameters
    ----------
    n_chans, n_times : int
        Input channels and time samples.
    n_outputs : int
        Embedding size (1024 for ViT-H-14 CLIP).
    sfreq : float
        Sampling rate in Hz (recorded in the config; some backbones use it).
    n_subjects : int
        Number of training subjects (ids ``0..n_subjects-1``); id ``-1`` means unseen.
    """

    #: Registry name, set by each subclass (a family's name for ``has_variants`` classes).
    name: ClassVar[str] = ""
    #: Whether the class is a family named ``name:variant`` (see :meth:`variant_options`).
    has_variants: ClassVar[bool] = False
    #: Whether users pick it by name (``list_models``, ``create_encoder``); False for encoders that training
    #: builds from others (the seed ensemble), which load from their saved config all the same.
    listed: ClassVar[bool] = True
    #: Submodules (dotted names) of the output head, e.g. ``("proj_eeg",)``.
    head_modules: ClassVar[tuple[str, ...]] = ()
    #: Submodules of the feature extractor (temporal/spatial convolutions, a backbone).
    encoder_modules: ClassVar[tuple[str, ...]] = ()
    #: Submodules of attention/transformer blocks.
    attention_modules: ClassVar[tuple[str, ...]] = ()
    #: Whether the encoder is fitted in closed form (:mod:`eegvision.training.closed_form`) instead of by
    #: gradient descent; it can still be fine-tuned by gradient afterwards.
    closed_form: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if not name:
            return
        known = ENCODER_CLASSES.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"Encoder name {name!r} of {cls.__module__}.{cls.__qualname__} is already registered "
                             f"by {known.__module__}.{known.__qualname__}; give the new class another name.")
        ENCODER_CLASSES[name] = cls

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        """The variant names of a family (``has_variants``); ``()`` for other classes."""
        return ()

    @classmethod
    def variant_options(cls, variant: str) -> dict[str, Any]:
        """Constructor options implied by the ``variant`` part of a ``family:variant`` name.

        Classes without variants accept only ``""`` (the bare name) and imply nothing.
        """
        if variant:
            raise ValueError(f"Encoder {cls.name!r} has no variants; got the name {cls.name + ':' + variant!r}. "
                             f"Use {cls.name!r}.")
        return {}

    @classmethod
    def check_options(cls, options: Mapping[str, Any], name: str) -> None:
        """Raise a ``ValueError`` naming the allowed options if ``options`` holds one the constructor lacks."""
        params = inspect.signature(cls.__init__).parameters
        allowed = [p for p in params if p not in ("self", *SIGNAL_PARAMETERS)]
        check_names("Option", list(options), allowed, f"the options of encoder {name}")

    @staticmethod
    def from_config(config: Mapping[str, Any]) -> EEGEncoder:
        """A freshly initialised encoder of the architecture ``config`` describes (an encoder's ``.config``).

        Examples
        --------
        >>> from eegvision.models import create_encoder
        >>> enc = create_encoder("nice", n_chans=17, n_times=100, n_outputs=32)
        >>> EEGEncoder.from_config(enc.config).config == enc.config
        True
        """
        options = dict(config)
        whitening = options.pop(WHITENING_KEY, None)
        name = options.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"An encoder config needs its registry 'name' (e.g. 'atms'); got the keys "
                             f"{sorted(config)}. Pass an encoder's .config.")
        cls, fixed = encoder_class(name)
        options.update(fixed)
        cls.check_options({k: v for k, v in options.items() if k not in SIGNAL_PARAMETERS}, name)
        model = cls(**options)
        if whitening is not None:  # the buffer's values come with the weights (from_pretrained)
            model.set_whitening(torch.eye(model.n_chans), whitening)
        return model

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, sfreq: float = 250.0,
                 n_subjects: int = 1):
        super().__init__()
        self.n_chans = _check_positive_int("n_chans", n_chans)
        self.n_times = _check_positive_int("n_times", n_times)
        self.n_outputs = _check_positive_int("n_outputs", n_outputs)
        self.n_subjects = _check_positive_int("n_subjects", n_subjects)
        if not isinstance(sfreq, (int, float)) or sfreq <= 0:
            raise ValueError(f"sfreq must be a positive number of Hz, got {sfreq!r}.")
        self.sfreq = float(sfreq)
        self._config: dict[str, Any] = {}
        self._whitening: str | None = None

    # ------------------------------------------------------------------ config
    def _set_config(self, **options: Any) -> None:
        config = {
            "name": self.name, "n_chans": self.n_chans, "n_times": self.n_times,
            "n_outputs": self.n_outputs, "sfreq": self.sfreq, "n_subjects": self.n_subjects,
            **options,
        }
        if self._whitening is not None:
            config[WHITENING_KEY] = self._whitening
        try:
            json.dumps(config)
        except TypeError as err:
            raise ValueError(f"Encoder options must be JSON-serialisable, got {options!r}.") from err
        self._config = config

    @property
    def config(self) -> dict[str, Any]:
        """Every constructor argument, JSON-able; :meth:`from_config` rebuilds the model."""
        return json.loads(json.dumps(self._config))

    def config_for_subjects(self, n_subjects: int) -> dict[str, Any]:
        """:attr:`config` with ``n_subjects`` subject rows (subclasses adjust options tied to it)."""
        return {**self.config, "n_subjects": int(n_subjects)}

    # ------------------------------------------------------------------ input whitening
    def set_whitening(self, matrix: torch.Tensor | Any, kind: str = "mvnn") -> None:
        """Multiply the channel axis of every input by ``matrix`` before :meth:`embed` (see the module docstring).

        Parameters
        ----------
        matrix : Tensor or array, shape (n_chans, n_chans)
            The whitening matrix (for MVNN the symmetric inverse square root of the noise covariance); kept as
            the float32 buffer ``whitener`` (saved and loaded with the weights, not trained).
        kind : {"mvnn"}
            Recorded in :attr:`config` as ``"whitening"``.
        """
        check_choice("whitening", kind, WHITENING_KINDS)
        m = torch.as_tensor(matrix).detach().to(torch.float32)
        check_shape("The whitening matrix", m, (self.n_chans, self.n_chans),
                    hint=f"It acts on the encoder's {self.n_chans} input channels.")
        check_finite("The whitening matrix", m.cpu().numpy())
        current = self._buffers.get(WHITENER_BUFFER)
        if current is None:
            self.register_buffer(WHITENER_BUFFER, m.clone())
        else:
            current.copy_(m)
        self._whitening = kind
        if self._config:
            self._config[WHITENING_KEY] = kind

    def whitening_matrix(self) -> torch.Tensor | None:
        """The input whitening matrix ``(n_chans, n_chans)`` applied in :meth:`forward`, or None."""
        return self._buffers.get(WHITENER_BUFFER)

    # ------------------------------------------------------------------ parameter groups
    def subject_tables(self) -> dict[str, SubjectEmbedding]:
        """The subject tables (:class:`SubjectEmbedding` submodules) by dotted name; empty without any."""
        return {name: m for name, m in self.named_modules() if isinstance(m, SubjectEmbedding)}

    def module_groups(self) -> dict[str, list[str]]:
        """Dotted names of the submodules (or parameters) of each part: ``head``, ``encoder``,
        ``attention``, ``subject``.

        From the class attributes ``head_modules``, ``encoder_modules``, ``attention_modules`` (names
        this instance lacks, such as optional layers, are left out) and :meth:`subject_tables`. A
        parameter belongs to the group of the longest name it lies under, so the subject table inside
        ATM-S's transformer is ``subject``, the rest of the transformer ``attention``.
        """
        present = {n for n, _ in self.named_modules()} | {n for n, _ in self.named_parameters()}
        declared = {"head": self.head_modules, "encoder": self.encoder_modules, "attention": self.attention_modules}
        groups = {group: [n for n in names if n in present] for group, names in declared.items()}
        groups["subject"] = list(self.subject_tables())
        return groups

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, subject_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Embed a batch.

        Parameters
        ----------
        x : Tensor, shape (batch, n_chans, n_times)
            EEG/MEG epochs.
        subject_ids : LongTensor, shape (batch,), optional
            Subject index of each sample; ``-1`` (or ``>= n_subjects``) selects the shared token of
            encoders with subject conditioning. ``None`` treats every sample as unseen.

        Returns
        -------
        Tensor, shape (batch, n_outputs)
        """
        if x.ndim != 3 or x.shape[1] != self.n_chans or x.shape[2] != self.n_times:
            raise ValueError(
                f"eeg must have shape (batch, n_chans={self.n_chans}, n_times={self.n_times}), got "
                f"{tuple(x.shape)}. Build the encoder with the n_chans/n_times of your data."
            )
        check_subject_ids(subject_ids, x.shape[0])
        if subject_ids is not None and subject_ids.device != x.device:
            subject_ids = subject_ids.to(x.device)
        whitener = self._buffers.get(WHITENER_BUFFER)
        if whitener is not None:
            x = torch.matmul(whitener.to(x.dtype), x)
        return self.embed(x, subject_ids)

    def embed(self, x: torch.Tensor, subject_ids: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (atomically) to ``directory``; returns it."""
        return write_checkpoint(self, self.config, directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> EEGEncoder:
        """Rebuild an encoder saved with :meth:`save_pretrained` (in eval mode, on ``map_location``)."""
        model = EEGEncoder.from_config(read_checkpoint_config(directory))
        load_checkpoint_weights(model, directory, map_location)
        return model.to(map_location).eval()

    def n_parameters(self, trainable_only: bool = False) -> int:
        """Number of (unique) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def extra_repr(self) -> str:
        return (f"n_chans={self.n_chans}, n_times={self.n_times}, n_outputs={self.n_outputs}, "
                f"n_subjects={self.n_subjects}")
