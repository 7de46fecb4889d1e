"""Evaluate precomputed test embeddings: image retrieval and text-feature classification, every k.

This is the library side of ``eegvision evaluate --eeg-embeds F --image-features F``: row ``i`` of the EEG
embeddings is test concept ``i`` (the average of its test repetitions), row ``i`` of the image features is
that concept's test image, and row ``j`` of the text features is concept ``j``'s prompt.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from eegvision.checks import check_file, check_list, check_names, check_shape, show_list
from eegvision.evaluation.calibration import CALIBRATIONS, calibrate
from eegvision.evaluation.csls import csls_scores
from eegvision.evaluation.kway import (
    DEFAULT_KS,
    DEFAULT_TOPS,
    cosine_similarity,
    kway_exact,
    kway_montecarlo,
)
from eegvision.evaluation.results import Evaluation, make_rows, write_result_files
from eegvision.tensorfiles import load_safetensors, load_torch, open_safetensors

__all__ = ["evaluate_embedding_files", "evaluate_embeddings", "load_embeddings"]

_EMBED_KEYS = ("eeg_features", "eeg_embeddings", "embeddings", "eeg", "features", "img_features", "image")


def _tensor_to_numpy(x, path) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[1] == 1:
        x = x[:, 0]
    check_shape(f"{path}: the embeddings", x, ("n_concepts", "dim"))
    return x.astype(np.float32, copy=False)


def _pick(d: Mapping, key: str | None, path) -> object:
    if key is not None:
        if key not in d:
            raise ValueError(f"{path} has no entry '{key}'; it has {show_list(sorted(d))}")
        return d[key]
    if len(d) == 1:
        return next(iter(d.values()))
    for k in _EMBED_KEYS:
        if k in d:
            return d[k]
    raise ValueError(f"{path} holds several arrays ({show_list(sorted(d))}); give a file with one.")


def load_embeddings(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Load an embedding matrix ``(n, dim)`` (float32 numpy), row ``i`` = test concept ``i``.

    Accepts a ``torch.save`` of a tensor or of a dict of tensors (ATM style; ``key`` selects an entry, e.g.
    ``"img_features"`` or ``"text_features"``), a ``.npy`` / ``.npz`` array, or a ``.safetensors`` file
    (an eegvision feature file gives its ``image`` tensor unless ``key`` says otherwise). ``.pt`` files are
    read with ``weights_only=True``.
    """
    path = check_file(path, "Embedding file", "Write one with `eegvision embed RUN` (or pass a .pt/.npy/.npz/"
                      ".safetensors file).")
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        obj = load_torch(path, "Embedding file")
        if isinstance(obj, Mapping):
            obj = _pick(obj, key, path)
        return _tensor_to_numpy(obj, path)
    if suffix == ".npy":
        return _tensor_to_numpy(np.load(path, allow_pickle=False), path)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return _tensor_to_numpy(_pick(dict(z), key, path), path)
    if suffix == ".safetensors":
        return _tensor_to_numpy(_pick(load_safetensors(path, "Embedding file"), key, path), path)
    raise ValueError(f"unknown embedding file type {path.name!r}: use .pt, .npy, .npz or .safetensors")


def _as_matrix(x, name: str) -> np.ndarray:
    if isinstance(x, (str, os.PathLike)):
        return load_embeddings(x)
    return _tensor_to_numpy(x, name)


def _subject_keyed(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """``{subject: (n, dim)}`` of a ``.safetensors`` file keyed by subject (written by ``eegvision embed`` or a
    run's ``test_embeddings.safetensors``: no key is one of the usual embedding names); None for other files."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return None
    with open_safetensors(path, "Embedding file") as f:
        keys = list(f.keys())
    if not keys or any(k in _EMBED_KEYS or k == "text" for k in keys):
        return None
    return {k: load_embeddings(path, key=k) for k in keys}


def _usable_ks(ks: Sequence[int], n_candidates: int, what: str) -> tuple[int, ...]:
    ok = tuple(k for k in ks if 2 <= k <= n_candidates)
    dropped = [k for k in ks if k not in ok]
    if dropped:
        warnings.warn(f"{what}: only {n_candidates} candidates, so k = {show_list(dropped)} cannot be evaluated; skipped",
                      stacklevel=3)
    return ok


def evaluate_embeddings(
    eeg,
    image_features,
    text_features=None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    tops: Sequence[int] = DEFAULT_TOPS,
    methods: Sequence[str] = ("exact",),
    mc_draws: int = 1000,
    seed: int = 0,
    info: Mapping | None = None,
    text_targets=None,
    ties: str = "pessimistic",
    csls_neighbors: int = 10,
    calibrations: Sequence[str] = (),
) -> list[dict]:
    """Zero-shot k-way evaluation of test embeddings against image features and (optionally) text features.

    Parameters
    ----------
    eeg : array, tensor or path (n_test, dim)
        Test embeddings, row ``i`` = test concept ``i``.
    image_features : array, tensor or path (n_test, dim)
        Image features of the test images in the same order (cosine similarity is used, so raw or
        normalised features give the same result).
    text_features : array, tensor or path (n_concepts, dim), optional
        Concept text features; adds ``modality="text"`` rows (classification by the closest prompt).
    ks, tops : sequences of int
        k values (those above the number of candidates are skipped with a warning) and top-t criteria.
    methods : sequence of {"exact", "montecarlo", "csls"}
        ``exact``: expected accuracy over all distractor sets. ``montecarlo``: the reference protocol,
        ``mc_draws`` seeded repetitions (rows carry the mean and the spread of single draws). ``csls``:
        exact k-way on CSLS-corrected scores (transductive, labelled so in the rows).
    mc_draws, seed : int
        Monte-Carlo repetitions and seed.
    info : mapping, optional
        Run description copied into every row (dataset, subject, encoder, seed, protocol, selection, n_train,
        n_chans, window, features, optional best_epoch_on_test_top1).
    text_targets : array of int (n_test,), optional
        Concept index of each query for text classification; default ``arange(n_test)``.
    ties : str
        Tie rule of the exact method (see :func:`eegvision.evaluation.kway.kway_exact`).
    csls_neighbors : int
        Neighbourhood size of CSLS.
    calibrations : sequence of {"centre", "whiten", "procrustes", "score"}
        Transductive calibrations (:mod:`eegvision.evaluation.calibration`): for each, the queries and each
        candidate pool are calibrated together and scored with the exact method; those rows carry
        ``calibration`` and ``transductive=True`` (report them apart from the inductive rows).

    Returns
    -------
    list of dict
        Result rows (see :mod:`eegvision.evaluation.results`), fractions not percent.
    """
    methods = tuple(check_names("Method", check_list("methods", methods, "['exact', 'csls']"),
                                ("exact", "montecarlo", "csls"), "the k-way methods"))
    if not methods:
        raise ValueError("methods is empty; give at least one of exact, montecarlo, csls.")
    calibrations = tuple(check_names("Calibration", check_list("calibrations", calibrations, "['centre', 'score']"),
                                     CALIBRATIONS, "the transductive calibrations"))
    q = _as_matrix(eeg, "eeg")
    img = _as_matrix(image_features, "image_features")
    if img.shape[0] != q.shape[0]:
        raise ValueError(
            f"{q.shape[0]} EEG embeddings but {img.shape[0]} image feature rows; row i of both must be test "
            "concept i (use the test-split features, one image per test concept)"
        )
    pools = [("image", img, None)]
    if text_features is not None:
        txt = _as_matrix(text_features, "text_features")
        targets = np.arange(q.shape[0]) if text_targets is None else np.asarray(text_targets, dtype=np.int64)
        if text_targets is None and txt.shape[0] != q.shape[0]:
            raise ValueError(
                f"{txt.shape[0]} text feature rows for {q.shape[0]} queries: pass text_targets (the concept "
                "index of every query) or the text features of the test concepts only"
            )
        pools.append(("text", txt, targets))

    rows: list[dict] = []
    for modality, cand, targets in pools:
        sim = cosine_similarity(q, cand)
        usable = _usable_ks(ks, cand.shape[0], f"{modality} candidates")
        if not usable:
            continue
        for method in methods:
            if method == "exact":
                acc = kway_exact(sim, targets, ks=usable, tops=tops, ties=ties)
            elif method == "montecarlo":
                acc = kway_montecarlo(sim, targets, ks=usable, tops=tops, n_draws=mc_draws, seed=seed)
            else:
                acc = kway_exact(csls_scores(sim, csls_neighbors), targets, ks=usable, tops=tops, ties=ties)
            rows += make_rows(acc, modality=modality, method=method, info=info, n_candidates=cand.shape[0])
        for name in calibrations:
            cal = calibrate(q, cand, name)
            acc = kway_exact(cosine_similarity(cal.queries, cal.candidates), targets, ks=usable, tops=tops, ties=ties)
            rows += make_rows(acc, modality=modality, method="exact", info=info, n_candidates=cand.shape[0],
                              calibration=name)
    return rows


def evaluate_embedding_files(
    eeg_embeds: str | os.PathLike,
    image_features: str | os.PathLike,
    text_features: str | os.PathLike | None = None,
    *,
    out: str | os.PathLike | None = None,
    **kwargs,
) -> Evaluation:
    """:func:`evaluate_embeddings` on files, with text features taken from the image-feature file if present.

    ``image_features`` may be an eegvision feature file (its ``text`` tensor is used when ``text_features`` is
    not given), an ATM-style ``{'img_features', 'text_features'}`` ``.pt``, a tensor ``.pt`` or a ``.npy``.
    With ``out`` (a directory), the rows are written to ``out/metrics.json`` and ``out/metrics.csv``.

    Returns
    -------
    Evaluation
        The result rows and the files written.
    """
    from eegvision.features.files import load_features

    feats = load_features(image_features)
    text = load_embeddings(text_features) if text_features is not None else feats.text
    info = dict(kwargs.pop("info", None) or {})
    if not info.get("features"):
        info["features"] = feats.metadata.get("model") or Path(image_features).name
    per_subject = _subject_keyed(eeg_embeds)
    if per_subject is None:
        rows = evaluate_embeddings(load_embeddings(eeg_embeds), feats.image, text, info=info, **kwargs)
    else:
        rows = []
        for subject, emb in per_subject.items():
            rows += evaluate_embeddings(emb, feats.image, text, info={**info, "subject": subject}, **kwargs)
    return Evaluation(rows=rows, files=write_result_files(rows, out) if out is not None else [])
