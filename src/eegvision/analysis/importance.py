"""Which channels does a trained encoder rely on? Occlusion and gradient x input, as MNE topomaps.

* **Occlusion**: replace one channel of every test sample by its mean over the test samples (per
  time point; ``fill="mean"``) or by zeros (``fill="zero"``), re-embed, and record the drop in
  all-way top-1 and in the mean cosine similarity to the true image. One forward pass per channel.
* **Gradient x input**: the gradient of the summed cosine similarity to the true images with
  respect to the input, times the input, in absolute value, averaged over samples and time.

Writes ``importance.csv`` (one row per channel) and ``importance.png`` (topomaps drawn with
``mne.viz.plot_topomap`` on the ``colin27_1020`` montage, ``standard_1020`` on older MNE).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eegvision.training.rundir import RunFolder, UnitFolder

__all__ = ["ChannelImportance", "channel_importance", "importance_for_run", "plot_topomaps", "run_test_embeddings"]


@dataclass
class ChannelImportance:
    """Per-channel importance.

    Attributes
    ----------
    table : pandas.DataFrame
        ``channel``, ``occlusion_top1_drop``, ``occlusion_similarity_drop``, ``gradient_x_input``.
    baseline_top1, baseline_similarity : float
        Unoccluded all-way top-1 and mean cosine to the true image.
    csv, figure : Path or None
    """

    table: Any
    baseline_top1: float
    baseline_similarity: float
    csv: Path | None = None
    figure: Path | None = None

    def ranking(self, by: str = "occlusion_similarity_drop") -> list[str]:
        """Channels from most to least important by column ``by``."""
        return self.table.sort_values(by, ascending=False, kind="stable")["channel"].tolist()


def _embed(encoder: torch.nn.Module, x: torch.Tensor, subject: torch.Tensor, batch_size: int) -> torch.Tensor:
    outs = [encoder(x[s:s + batch_size], subject[s:s + batch_size]) for s in range(0, len(x), batch_size)]
    return torch.nn.functional.normalize(torch.cat(outs).float(), dim=-1)


def channel_importance(encoder: torch.nn.Module, eeg: Any, features: Any, ch_names: Sequence[str], *,
                       subject_id: int = 0, fill: str = "mean", batch_size: int = 256,
                       device: str | None = None) -> ChannelImportance:
    """Occlusion and gradient x input importance of every channel for ``encoder``.

    Parameters
    ----------
    encoder : nn.Module
        ``encoder(x, subject_ids) -> (batch, dim)``.
    eeg : array (n, n_chans, n_times)
        Test samples (repetition-averaged), in the encoder's channel order.
    features : array (n, dim)
        Image features, row i = the image of sample i.
    ch_names : sequence of str
    subject_id : int
        Model subject id (``-1`` for an unseen subject).
    fill : {"mean", "zero"}
        What replaces an occluded channel.
    """
    import pandas as pd

    from eegvision.evaluation.kway import kway_exact
    from eegvision.utils import default_device

    if fill not in ("mean", "zero"):
        raise ValueError(f"fill must be 'mean' or 'zero'; got {fill!r}.")
    device = default_device(device)
    x = torch.as_tensor(np.asarray(eeg), dtype=torch.float32, device=device)
    y = torch.nn.functional.normalize(torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device), dim=-1)
    if x.ndim != 3 or x.shape[1] != len(ch_names) or len(x) != len(y):
        raise ValueError(f"eeg must be (n, {len(ch_names)} channels, n_times) with one feature row per sample; got "
                         f"eeg {tuple(x.shape)} and features {tuple(y.shape)}.")
    subj = torch.full((len(x),), int(subject_id), dtype=torch.long, device=device)
    was_training = encoder.training
    encoder = encoder.to(device).eval()
    n = len(x)

    def score(emb: torch.Tensor) -> tuple[float, float]:
        s = emb @ y.T
        top1 = kway_exact(s.cpu().numpy(), ks=[n], tops=[1]).get(n, 1)
        return float(top1), float(torch.diagonal(s).mean())

    with torch.no_grad():
        base_top1, base_sim = score(_embed(encoder, x, subj, batch_size))
        fill_values = x.mean(0) if fill == "mean" else torch.zeros_like(x[0])
        drops = []
        for c in range(x.shape[1]):
            xo = x.clone()
            xo[:, c] = fill_values[c]
            t1, sim = score(_embed(encoder, xo, subj, batch_size))
            drops.append((base_top1 - t1, base_sim - sim))
    grads = torch.zeros(x.shape[1], device=device)
    for s in range(0, n, batch_size):
        xb = x[s:s + batch_size].clone().requires_grad_(True)
        emb = torch.nn.functional.normalize(encoder(xb, subj[s:s + batch_size]).float(), dim=-1)
        (emb * y[s:s + batch_size]).sum().backward()
        grads += (xb.grad * xb).abs().detach().sum(dim=(0, 2))
    grads = grads / (n * x.shape[2])
    encoder.train(was_training)
    table = pd.DataFrame({"channel": list(ch_names), "occlusion_top1_drop": [d[0] for d in drops],
                          "occlusion_similarity_drop": [d[1] for d in drops],
                          "gradient_x_input": grads.cpu().numpy()})
    table["fill"] = fill
    return ChannelImportance(table, base_top1, base_sim)


def _montage_info(ch_names: Sequence[str], sfreq: float = 250.0):
    import mne

    info = mne.create_info(list(ch_names), sfreq, "eeg")
    try:
        montage = mne.channels.make_standard_montage("colin27_1020")
    except ValueError:  # MNE < 1.13
        montage = mne.channels.make_standard_montage("standard_1020")
    info.set_montage(montage, on_missing="ignore")
    return info


def plot_topomaps(table: Any, path: str | os.PathLike,
                  columns: Sequence[str] = ("occlusion_similarity_drop", "gradient_x_input"),
                  title: str = "") -> Path:
    """One ``mne.viz.plot_topomap`` per column of ``table``; channels without a montage position are skipped."""
    import mne

    from eegvision.analysis._plot import figure, save

    info = _montage_info(table["channel"].tolist())
    pos_ok = np.array([np.all(np.isfinite(ch["loc"][:3])) and np.any(ch["loc"][:3] != 0) for ch in info["chs"]])
    if pos_ok.sum() < 3:
        raise ValueError("Fewer than 3 channels have a position on the standard 10-20 montage; cannot draw a "
                         f"topomap for channels {table['channel'].tolist()[:8]}.")
    info = mne.pick_info(info, np.flatnonzero(pos_ok))
    fig, axes = figure(4.0 * len(columns), 3.8, ncols=len(columns))
    axes = np.atleast_1d(axes)
    for ax, col in zip(axes, columns):
        values = table[col].to_numpy(dtype=np.float64)[pos_ok]
        im, _ = mne.viz.plot_topomap(values, info, axes=ax, show=False, cmap="Reds" if values.min() >= 0 else "RdBu_r")
        ax.set_title(col.replace("_", " "), fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.7)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def _test_features(run: RunFolder, features_test: str | None, unit: UnitFolder | None = None) -> np.ndarray:
    """The run's test image features; projected by ``unit``'s image projector when it has one."""
    from eegvision.training.inputs import load_training_features

    cfg = run.fit_config()
    path = Path(features_test or run.feature_files().get("test") or cfg.features_test
                or Path(cfg.data) / "features" / "test.safetensors")
    feats = load_training_features(cfg, path, run.feature_cache, None)
    projector = unit.load_image_projector() if unit is not None else None
    if projector is not None:
        feats = projector.project_features(feats)
    return feats.image.numpy().astype(np.float32)


def _unit(run: RunFolder, unit: str | None, subject: str | None) -> UnitFolder:
    """Unit ``unit``; else the run's only unit, the unit tested on ``subject``, or the first unit."""
    if unit is not None:
        return run.unit(unit)
    units = run.units()
    return units[0] if len(units) == 1 or subject is None else run.unit_for_subject(subject)


def run_test_embeddings(run_dir: str | os.PathLike, *, subject: str | None = None, unit: str | None = None,
                        features_test: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """A run's stored test embeddings of one subject, its test image features and the subject name.

    The unit is ``unit``, else the run's only unit, the one tested on ``subject`` or the first; the subject
    defaults to the unit's first test subject.
    """
    run = RunFolder.open(run_dir)
    folder = _unit(run, unit, subject)
    embs = folder.read_test_embeddings()
    subject = subject or sorted(embs)[0]
    if subject not in embs:
        raise ValueError(f"Run {folder.path} has no test embeddings of {subject!r}; it has {sorted(embs)}.")
    return embs[subject].float().numpy(), _test_features(run, features_test, folder), subject


def importance_for_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, data: str | None = None,
                       subject: str | None = None, unit: str | None = None, features_test: str | None = None,
                       fill: str = "mean", device: str | None = None) -> ChannelImportance:
    """Channel importance of a trained run on one test subject; writes ``importance.{csv,png}``.

    ``data`` defaults to the run's data path; ``subject`` to the unit's first test subject.
    """
    from eegvision.data.sources import open_data
    from eegvision.training.run import load_run
    from eegvision.utils import atomic_path

    folder = RunFolder.open(run_dir)
    run = load_run(folder.path, unit=_unit(folder, unit, subject).name)
    subject = subject or (run.test_subjects or [None])[0]
    if subject is None:
        raise ValueError(f"Run {run_dir} records no test subject; pass --subject.")
    store = open_data(data or run.config.data)
    ds = run.dataset(store, subject, "test", average=True)
    batch = ds.fetch(np.arange(len(ds)))
    feats = _test_features(folder, features_test, run.folder)[batch["condition"]]
    res = channel_importance(run.encoder, batch["eeg"], feats, ds.ch_names, subject_id=run.subject_id(subject),
                             fill=fill, device=device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res.table.insert(0, "subject", subject)
    res.csv, res.figure = out / "importance.csv", out / "importance.png"
    with atomic_path(res.csv, suffix=".csv") as tmp:
        res.table.to_csv(tmp, index=False)
    plot_topomaps(res.table, res.figure, title=f"{subject}: channel importance (baseline top-1 "
                                               f"{res.baseline_top1:.1%})")
    return res
