"""Score a folder of reconstructions against the ground-truth test images: pairing, the metric suite, the table.

Pairing is by **0-based concept index** -- the position of the ground truth's concept folder in sorted order (the
store's ``concept_index``; THINGS' ``NNNNN`` folder numbers count from 1 and are only names) and the
``concept_index`` of the reconstruction manifest's concept table -- never by directory listing order (the ATM
metrics notebook pairs by unsorted ``os.listdir``) and never by guessing an offset. Concept names are checked as
well; a disagreement is an error naming the concepts. Manifests without a concept table (eegvision 0.1.0) are
read through their concept names (:func:`read_manifest`).

Several reconstructions per concept are reduced by two documented rules, both reported:

* ``first``: only the lowest sample index of each concept is scored;
* ``mean``: every reconstruction is scored against the ground truth; per-concept scores are averaged over samples,
  then over concepts. For two-way identification each reconstruction is compared with all N − 1 other ground
  truths of the paired set.

Result table (long format): one row per (subject, rule, metric) with ``direction`` (↑/↓), ``chance``, ``value``,
``n_concepts``, ``n_images``, ``base_size`` (256 when MindEye's 256-px resize came first, else ``none``),
``antialias`` (``False``: MindEye2's environment, resizes without antialiasing) and how the concepts were paired;
subject ``all`` rows hold the mean and standard deviation over subjects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from eegvision.checks import show_list
from eegvision.metrics.identification import (
    FEATURE_METRICS,
    FeatureExtractors,
    correlation_distance,
    correlation_matrix,
    find_weights,
    two_way_identification,
)
from eegvision.metrics.images import (
    MINDEYE_BASE_SIZE,
    load_image_uint8,
    pixcorr,
    resize_antialias,
    ssim,
    to_float_batch,
)
from eegvision.store.concepts import ConceptTable, normalize_concept

PIXEL_METRICS = ("PixCorr", "SSIM")
GENACC_METRICS = ("GenAcc top-1", "GenAcc top-5")
ALL_METRICS = PIXEL_METRICS + tuple(FEATURE_METRICS) + GENACC_METRICS
DIRECTION = {"PixCorr": "↑", "SSIM": "↑", "AlexNet(2)": "↑", "AlexNet(5)": "↑", "Inception": "↑", "CLIP": "↑",
             "EffNet-B": "↓", "SwAV": "↓", "GenAcc top-1": "↑", "GenAcc top-5": "↑"}
RULES = ("first", "mean")
#: Version of the reconstruction manifest layout (written by :mod:`eegvision.generation.reconstruct`):
#: 2 = a recorded concept table and its 0-based ``concept_index``; 1 = eegvision 0.1.0, no table.
MANIFEST_FORMAT_VERSION = 2


def scan_ground_truth(root: str | Path) -> pd.DataFrame:
    """Index a ``test_images/`` root of concept folders (``NNNNN_concept``), one image each.

    Returns
    -------
    DataFrame with ``concept_index`` (0-based: the folder's position in sorted order, as the store numbers
    concepts; THINGS' ``NNNNN`` counts from 1 and is only part of the name), ``concept`` and ``path``.
    """
    from eegvision.readers.images import scan_image_folder

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Ground-truth folder {root} does not exist; give the test_images/ root that holds "
                                "NNNNN_concept folders.")
    try:
        images = scan_image_folder(root)
    except ValueError as exc:
        raise ValueError(f"{exc} Expected e.g. {root}/00001_aircraft_carrier/*.jpg, one image per concept.") from None
    counts = images.counts
    if (counts != 1).any():
        bad = int(np.flatnonzero(counts != 1)[0])
        raise ValueError(f"{root / images.folders[bad]} holds {counts[bad]} images; a ground-truth concept folder must "
                         "hold exactly one (the THINGS-EEG2 test set has one image per concept).")
    table = ConceptTable.from_image_set(images, split="ground truth")
    return table.to_frame().rename(columns={"image": "path"})


def _ground_truth_table(gt: pd.DataFrame) -> ConceptTable:
    return ConceptTable(tuple(gt["concept_index"]), tuple(gt["concept"]), tuple(gt["path"]), "ground truth")


def read_manifest(recon_dir: str | Path, concepts: ConceptTable | None = None) -> pd.DataFrame:
    """The reconstruction manifest (``manifest.json``, else ``manifest.csv``) with absolute ``path`` column.

    ``concept_index`` is the 0-based index of the concept table the manifest records (``format_version`` 2).
    A manifest without a table -- ``format_version`` 1 as eegvision 0.1.0 wrote it (its numbers count as the
    caller did: from 1 for THINGS folders), or a ``manifest.csv`` alone -- is read only with ``concepts``, the
    table of its split: each row's concept is then found by its name (column ``index_source`` says which way).

    A folder without a manifest but with ``<subject>/manifest.json`` sub-folders (one reconstruction run per
    subject) is read as the union of those manifests.

    Raises
    ------
    ValueError
        A manifest without concept table and no ``concepts``, or whose names are missing or not in ``concepts``
        (the message says how to redo it).
    """
    recon_dir = Path(recon_dir)
    if not (recon_dir / "manifest.json").is_file() and not (recon_dir / "manifest.csv").is_file():
        subdirs = sorted(d for d in recon_dir.glob("*/manifest.json")) if recon_dir.is_dir() else []
        if subdirs:  # one folder per subject, each written by `eegvision reconstruct`
            parts = []
            for m in subdirs:
                part = read_manifest(m.parent, concepts)
                part["file"] = [f"{m.parent.name}/{f}" for f in part["file"]]
                parts.append(part)
            return pd.concat(parts, ignore_index=True)
    header: dict = {}
    if (recon_dir / "manifest.json").is_file():
        where = recon_dir / "manifest.json"
        header = json.loads(where.read_text())
        df = pd.DataFrame(header.pop("images"))
    elif (recon_dir / "manifest.csv").is_file():
        where = recon_dir / "manifest.csv"
        df = pd.read_csv(where)
    else:
        raise FileNotFoundError(f"No manifest.json or manifest.csv in {recon_dir}; score a folder written by "
                                "`eegvision reconstruct` (the manifest links each image to its concept).")
    needed = {"file", "concept_index"}
    if not needed <= set(df.columns):
        raise ValueError(f"Manifest {where} lacks columns {show_list(sorted(needed - set(df.columns)))}.")
    version = header.get("format_version", 1)
    if not isinstance(version, int) or version > MANIFEST_FORMAT_VERSION:
        raise ValueError(f"{where} has format_version {version!r}; this eegvision reads versions up to "
                         f"{MANIFEST_FORMAT_VERSION}. Upgrade eegvision to score it.")
    df = df.copy()
    df["path"] = [str(recon_dir / f) for f in df["file"]]
    for col, default in (("subject", "all"), ("sample", 0), ("concept", None)):
        if col not in df.columns:
            df[col] = default
    df["subject"] = df["subject"].astype(str)
    if version >= 2 and "concepts" in header:
        df["index_source"] = "concept table"
        return df
    df["concept_index"] = _index_by_name(df, where, concepts)
    df["index_source"] = "concept name (manifest without concept table)"
    return df


def _index_by_name(df: pd.DataFrame, where: Path, concepts: ConceptTable | None) -> list[int]:
    """0-based indices of a manifest without concept table, found by concept name in ``concepts``."""
    redo = ("or reconstruct again with this eegvision (`eegvision reconstruct RUN --generator DIR --out NEW`), whose "
            "manifest records the 0-based concept table.")
    old = (f"{where} records no concept table (written by eegvision 0.1.0, manifest format_version 1, or a "
           "manifest.csv alone): its concept_index counts as its writer did (from 1 for THINGS test folders) and "
           "is not the 0-based index.")
    if concepts is None:
        raise ValueError(f"{old} Read it with the concept table of its split (read_manifest(RECON, concepts=table); "
                         f"`eegvision score-images GT RECON` takes the table from GT's folders), {redo}")
    names = df["concept"]
    if names.isna().any() or (names.astype(str).str.strip() == "").any():
        raise ValueError(f"{old} It has no concept name for {int((names.isna() | (names.astype(str) == '')).sum())} "
                         f"image(s), so its concepts cannot be found in the {concepts.split or ''} table; {redo}")
    try:
        return concepts.indices_of(names.astype(str), where=str(where))
    except ValueError as exc:
        raise ValueError(f"{old} {exc} Give the ground truth of the split it was made from, {redo}") from None


def pair_reconstructions(gt: pd.DataFrame, recon: pd.DataFrame) -> pd.DataFrame:
    """Attach to each reconstruction the row of its ground truth (column ``gt_row``), by 0-based concept index.

    Where the reconstructions name their concepts, every name must be the ground truth's name at that index
    (compared with :func:`~eegvision.store.concepts.normalize_concept`); no other numbering is tried.

    Raises
    ------
    ValueError
        An index without ground truth, or names that differ from the ground truth's (both listed).
    """
    gt_pos = {int(i): r for r, i in enumerate(gt["concept_index"])}
    gt_names = [normalize_concept(n) for n in gt["concept"]]
    pairs = recon[["concept_index", "concept"]].drop_duplicates()
    missing = sorted({int(i) for i in pairs["concept_index"] if int(i) not in gt_pos})
    wrong = [f"concept {int(i)} is {n!r} in the reconstructions and {gt['concept'].iloc[gt_pos[int(i)]]!r} in the "
             f"ground truth" for i, n in zip(pairs["concept_index"], pairs["concept"])
             if int(i) in gt_pos and n is not None and not pd.isna(n)
             and normalize_concept(n) != gt_names[gt_pos[int(i)]]]
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"concept index(es) {missing[:5]}{' ...' if len(missing) > 5 else ''} have no ground-truth "
                         f"image (the ground truth has {len(gt)} concepts, 0..{len(gt) - 1})")
        if wrong:
            parts.append("; ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""))
        raise ValueError("Cannot pair reconstructions with ground truth by 0-based concept index: " + "; ".join(parts)
                         + ". Check that GT is the image folder of the split the reconstructions were made from (its "
                         "sorted concept folders give the 0-based concept_index).")
    out = recon.copy()
    out["gt_row"] = [gt_pos[int(i)] for i in recon["concept_index"]]
    return out


@dataclass
class ScoreResult:
    """Output of :func:`score_images`: long summary table, per-image scores and the protocol."""

    table: pd.DataFrame
    per_image: pd.DataFrame
    protocol: dict = field(default_factory=dict)


def _load_batch(paths, base_size):
    return to_float_batch([load_image_uint8(p) for p in paths], base_size=base_size)


def score_images(gt_root: str | Path, recon_dir: str | Path, weights_dir: str | Path | None = None,
                 metrics: list[str] | None = None, base_size: int | None = MINDEYE_BASE_SIZE,
                 batch_size: int = 32, device: str | None = None, antialias: bool = True) -> ScoreResult:
    """Score reconstructions against ground truth with the MindEye suite (plus generation accuracy).

    Parameters
    ----------
    gt_root : path
        ``test_images/`` root with ``NNNNN_concept`` folders (one image each; sorted folder i is concept i).
    recon_dir : path
        Folder written by :func:`eegvision.generation.reconstruct.reconstruct` (has ``manifest.json``).
    weights_dir : path, optional
        Folder with the metric networks (see :mod:`eegvision.metrics.identification`). Without it only
        PixCorr and SSIM are computed.
    metrics : list of str, optional
        Subset of :data:`ALL_METRICS`; default all that ``weights_dir`` allows. A requested network metric whose
        weights are missing raises :class:`FileNotFoundError` naming the file.
    base_size : int or None
        MindEye's first step: resize every image to ``base_size`` px (256). ``None`` skips it (then all images
        must share one size). Recorded in the table.
    batch_size : int
        Images per forward pass.
    antialias : bool
        Antialias every resize (default). ``False`` reproduces MindEye2's published environment (torchvision 0.15
        tensor resizes without antialiasing) for comparisons with published tables. Recorded in the table
        (column ``antialias``) and the protocol.

    Returns
    -------
    ScoreResult
    """
    with resize_antialias(antialias):
        return _score_images(gt_root, recon_dir, weights_dir, metrics, base_size, batch_size, device, antialias)


def _score_images(gt_root, recon_dir, weights_dir, metrics, base_size, batch_size, device,
                  antialias) -> ScoreResult:
    from eegvision.progress import track

    gt = scan_ground_truth(gt_root)
    recon = pair_reconstructions(gt, read_manifest(recon_dir, concepts=_ground_truth_table(gt)))
    pairing = " + ".join(sorted(set(recon["index_source"])))
    if metrics is None:
        metrics = list(PIXEL_METRICS)
        if weights_dir is not None:
            for name, m in FEATURE_METRICS.items():
                try:
                    find_weights(weights_dir, m.network)
                    metrics.append(name)
                except FileNotFoundError:
                    pass
            if "CLIP" in metrics:
                metrics += list(GENACC_METRICS)
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"Unknown metrics {show_list(unknown)}; choose from {show_list(ALL_METRICS)}.")
    feat_names = [m for m in metrics if m in FEATURE_METRICS]
    genacc = [m for m in metrics if m in GENACC_METRICS]
    if (feat_names or genacc) and weights_dir is None:
        raise ValueError(f"Metrics {feat_names + genacc} need network weights; pass weights_dir (--weights DIR).")
    net_names = sorted(set(feat_names) | ({"CLIP"} if genacc else set()))
    extractor = FeatureExtractors(weights_dir, net_names, device=device) if net_names else None

    # ground-truth features for every GT image (generation accuracy ranks among all of them)
    gt_feats: dict[str, torch.Tensor] = {}
    if extractor is not None:
        chunks = []
        for s in track(range(0, len(gt), batch_size), "ground-truth features"):
            chunks.append(extractor(_load_batch(gt["path"].iloc[s:s + batch_size], base_size)))
        gt_feats = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}

    per_image_parts, chance_parts = [], []
    for subject, rec in recon.groupby("subject", sort=True):
        rec = rec.sort_values(["concept_index", "sample"], kind="stable").reset_index(drop=True)
        paired = np.unique(rec["gt_row"].to_numpy())          # the subject's paired GT set
        local = {int(g): i for i, g in enumerate(paired)}
        target = np.array([local[int(g)] for g in rec["gt_row"]])
        scores = {m: np.zeros(len(rec)) for m in metrics}
        for s in track(range(0, len(rec), batch_size), f"scoring {subject}"):
            sl = slice(s, s + batch_size)
            imgs = _load_batch(rec["path"].iloc[sl], base_size)
            gts = _load_batch(gt["path"].iloc[rec["gt_row"].iloc[sl]], base_size)
            if "PixCorr" in metrics:
                scores["PixCorr"][sl] = pixcorr(gts, imgs).numpy()
            if "SSIM" in metrics:
                scores["SSIM"][sl] = ssim(gts, imgs).numpy()
            if extractor is not None:
                feats = extractor(imgs)
                for name in feat_names:
                    corr = correlation_matrix(gt_feats[name][paired], feats[name])
                    fn = two_way_identification if FEATURE_METRICS[name].kind == "two_way" else correlation_distance
                    scores[name][sl] = fn(corr, target[sl]).numpy()
                if genacc:
                    sims = _cosine(feats["CLIP"], gt_feats["CLIP"])                    # (B, N_all_gt)
                    own = sims.gather(1, torch.tensor(rec["gt_row"].iloc[sl].to_numpy(), dtype=torch.long)[:, None])
                    rank = (sims > own).sum(1).numpy()
                    for m, k in (("GenAcc top-1", 1), ("GenAcc top-5", 5)):
                        if m in metrics:
                            scores[m][sl] = (rank < k).astype(float)
        df = rec[["subject", "concept_index", "concept", "sample", "file"]].copy()
        for m in metrics:
            df[m] = scores[m]
        per_image_parts.append(df)
        chance_parts.append(_chance(subject, rec, paired, target, metrics, feat_names, gt, gt_feats, base_size,
                                    batch_size, extractor))
    per_image = pd.concat(per_image_parts, ignore_index=True)
    chance = {k: v for part in chance_parts for k, v in part.items()}
    table = summarize(per_image, metrics, chance, n_gt=len(gt), base_size=base_size, pairing=pairing,
                      antialias=antialias)
    protocol = {"base_size": base_size, "pairing": f"0-based concept_index from the {pairing}", "rules": list(RULES),
                "metrics": metrics, "n_ground_truth": len(gt), "weights_dir": str(weights_dir) if weights_dir else None,
                "antialias": antialias, "resize": _RESIZE_NOTE[antialias],
                "chance": "each concept's first reconstruction vs the next concept's ground truth (PixCorr, SSIM, "
                          "EffNet-B, SwAV); 0.5 (two-way); k / N_gt (generation accuracy)"}
    return ScoreResult(table=table, per_image=per_image, protocol=protocol)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = torch.nn.functional.normalize(a.double(), dim=-1)
    b = torch.nn.functional.normalize(b.double(), dim=-1)
    return a @ b.T


def _chance(subject, rec, paired, target, metrics, feat_names, gt, gt_feats, base_size, batch_size,
            extractor=None) -> dict:
    """Chance levels. Two-way identification: 0.5; generation accuracy: k / N_gt. PixCorr, SSIM, EffNet-B and SwAV:
    the metric of mismatched pairs, each concept's first reconstruction scored against the next concept's ground
    truth (``np.roll`` by one over the concepts in index order), i.e. a reconstruction against the wrong image."""
    out: dict[tuple[str, str], float] = {}
    n = len(paired)
    for m in metrics:
        if m in FEATURE_METRICS and FEATURE_METRICS[m].kind == "two_way":
            out[(subject, m)] = 0.5
        elif m in GENACC_METRICS:
            out[(subject, m)] = min(1.0, (1 if m.endswith("1") else 5) / len(gt))
    first = rec.groupby("concept_index", sort=True).head(1).reset_index(drop=True)
    if n < 2:
        return out
    shifted = np.roll(np.arange(len(first)), -1)               # concept i's reconstruction vs concept i+1's GT
    wrong_gt = first["gt_row"].to_numpy()[shifted]
    pix = [m for m in PIXEL_METRICS if m in metrics]
    dist = [m for m in feat_names if FEATURE_METRICS[m].kind == "distance"]
    vals: dict[str, list] = {m: [] for m in pix + dist}
    if pix or dist:
        for s in range(0, len(first), batch_size):
            sl = slice(s, s + batch_size)
            imgs = _load_batch(first["path"].iloc[sl], base_size)
            if pix:
                gts = _load_batch(gt["path"].iloc[wrong_gt[sl]], base_size)
                if "PixCorr" in pix:
                    vals["PixCorr"].append(pixcorr(gts, imgs).numpy())
                if "SSIM" in pix:
                    vals["SSIM"].append(ssim(gts, imgs).numpy())
            if dist:
                feats = extractor(imgs)
                for m in dist:                                  # 1 − r(features of the wrong GT, reconstruction)
                    corr = correlation_matrix(gt_feats[m][wrong_gt[sl]], feats[m])
                    vals[m].append(correlation_distance(corr, np.arange(len(corr))).numpy())
    out.update({(subject, m): float(np.mean(np.concatenate(v))) for m, v in vals.items()})
    return out


_RESIZE_NOTE = {True: "bilinear, antialiased", False: "bilinear without antialiasing (MindEye2's environment)"}


def summarize(per_image: pd.DataFrame, metrics: list[str], chance: dict, n_gt: int,
              base_size: int | None, pairing: str = "concept table", antialias: bool = True) -> pd.DataFrame:
    """Long table per (subject, rule, metric), plus ``all`` rows with mean and std over subjects."""
    rows = []
    for subject, df in per_image.groupby("subject", sort=True):
        first = df.sort_values(["concept_index", "sample"]).groupby("concept_index").head(1)
        for rule, data in (("first", first), ("mean", df)):
            per_concept = data.groupby("concept_index")[metrics].mean()
            for m in metrics:
                rows.append({"subject": subject, "rule": rule, "metric": m, "direction": DIRECTION[m],
                             "chance": chance.get((subject, m), np.nan), "value": float(per_concept[m].mean()),
                             "std": np.nan, "n_subjects": 1, "n_concepts": len(per_concept),
                             "n_images": len(data)})
    table = pd.DataFrame(rows)
    agg = []
    for (rule, m), df in table.groupby(["rule", "metric"], sort=False):
        agg.append({"subject": "all", "rule": rule, "metric": m, "direction": DIRECTION[m],
                    "chance": float(df["chance"].mean()), "value": float(df["value"].mean()),
                    "std": float(df["value"].std(ddof=1)) if len(df) > 1 else np.nan, "n_subjects": len(df),
                    "n_concepts": int(df["n_concepts"].sum()), "n_images": int(df["n_images"].sum())})
    table = pd.concat([table, pd.DataFrame(agg)], ignore_index=True)
    table["base_size"] = base_size if base_size is not None else "none"
    table["antialias"] = bool(antialias)
    table["pairing"] = pairing
    order = {m: i for i, m in enumerate(ALL_METRICS)}
    table["_o"] = table["metric"].map(order)
    return table.sort_values(["rule", "subject", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def format_table(table: pd.DataFrame, rule: str = "first") -> str:
    """A Markdown table: one row per subject (and ``mean ± std``), one column per metric with its direction."""
    t = table[table["rule"] == rule]
    metrics = list(dict.fromkeys(t["metric"]))
    head = "| subject | " + " | ".join(f"{m} {DIRECTION[m]}" for m in metrics) + " |"
    lines = [head, "|" + "---|" * (len(metrics) + 1)]
    chance = t[t["subject"] == "all"].set_index("metric")["chance"]
    for subject, df in t.groupby("subject", sort=True):
        v = df.set_index("metric")
        if subject == "all":
            cells = [f"{v.loc[m, 'value']:.3f}" + (f" ± {v.loc[m, 'std']:.3f}" if np.isfinite(v.loc[m, "std"])
                                                     else "") for m in metrics]
            label = "mean ± std"
        else:
            cells, label = [f"{v.loc[m, 'value']:.3f}" for m in metrics], subject
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| chance | " + " | ".join(f"{chance.get(m, np.nan):.3f}" for m in metrics) + " |")
    base = t["base_size"].iloc[0] if len(t) else "?"
    resize_note = _RESIZE_NOTE[bool(t["antialias"].iloc[0])] if "antialias" in t and len(t) else "?"
    lines.append(f"\nrule: {rule}; images first resized to {base} px; resizes {resize_note}; paired by "
                 f"{t['pairing'].iloc[0]}")
    return "\n".join(lines)


def write_results(result: ScoreResult, path: str | Path) -> list[Path]:
    """Write the table (``.csv``/``.tsv``; ``.md`` gives the Markdown view) plus ``*.per_image.csv`` and
    ``*.protocol.json`` beside it (atomically)."""
    from eegvision.utils import atomic_path, write_text_atomic

    path = Path(path)
    written = []
    if path.suffix == ".md":
        write_text_atomic(path, "\n\n".join(format_table(result.table, r) for r in RULES) + "\n")
    else:
        with atomic_path(path) as tmp:
            result.table.to_csv(tmp, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    written.append(path)
    stem = path.with_suffix("")
    with atomic_path(f"{stem}.per_image.csv") as tmp:
        result.per_image.to_csv(tmp, index=False)
    written.append(Path(f"{stem}.per_image.csv"))
    write_text_atomic(f"{stem}.protocol.json", json.dumps(result.protocol, indent=2) + "\n")
    written.append(Path(f"{stem}.protocol.json"))
    return written
