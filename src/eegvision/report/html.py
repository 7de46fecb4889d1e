"""A static HTML report of a demo (or any run laid out like one), with its PNG figures beside it.

``build_report(demo_dir, report_dir)`` reads only files: ``DEMO/demo.json`` (stages, headline,
settings), ``DEMO/run/metrics.json`` (every result row), each unit's ``history.csv``,
``DEMO/data/simulation.json`` (Bayes ceiling, ridge) and the optional outputs of the generation,
caption and analysis stages. It writes ``REPORT/index.html`` and ``REPORT/figures/*.png``; the page
uses relative paths only, so the folder opens from disk and can be copied as a whole.

Every number shown carries a ``data-value`` attribute with the full-precision value it was
formatted from, and a ``data-key`` naming where it comes from, so tests (and people) can check the
page against the result files. A small inline script marks each figure as loaded or broken.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eegvision.report import figures as figs
from eegvision.utils import write_text_atomic

__all__ = ["build_report", "metric_key"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f6f8} td.l,th.l{text-align:left}
.cards{display:flex;gap:1em;flex-wrap:wrap} .card{border:1px solid #ddd;border-radius:8px;padding:.7em 1.1em;min-width:140px}
.card .v{font-size:1.8em;font-weight:600} .card .s{color:#666;font-size:.85em}
.ran{color:#1e7d3c} .skipped{color:#a46b00} .failed{color:#b3261e}
img{max-width:100%;border:1px solid #eee} .note{color:#555;font-size:.92em}
.flag{background:#fff4e5;border-left:4px solid #a46b00;padding:.4em .7em}
#img-warning{display:none;background:#fde8e8;border:1px solid #b3261e;padding:.5em}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img'); var ok = 0;
  imgs.forEach(function (im) {
    var good = im.complete && im.naturalWidth > 0;
    im.setAttribute('data-loaded', good ? 'true' : 'false'); if (good) { ok += 1; }
  });
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
  if (ok < imgs.length) { document.getElementById('img-warning').style.display = 'block'; }
});
"""


def metric_key(row: Mapping) -> str:
    """``subject/modality/method/k/`` — the key of a result row in the report's ``data-key`` attributes."""
    return f"{row['subject']}/{row['modality']}/{row['method']}/{int(row['k'])}"


def _num(value: Any, key: str, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return '<td data-key="{}">–</td>'.format(html.escape(key))
    return (f'<td data-key="{html.escape(key)}" data-value="{float(value)!r}">'
            f"{float(value):.{digits}f}</td>")


def _table(header: Sequence[str], body: Sequence[str], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>' for i, h in enumerate(header))
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _td(text: Any, cls: str = "l") -> str:
    return f'<td class="{cls}">{html.escape(str(text))}</td>'


def _img(rel: str, alt: str) -> str:
    return f'<p><img src="{html.escape(rel)}" alt="{html.escape(alt)}"></p>'


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def build_report(demo_dir: str | Path, report_dir: str | Path | None = None, title: str = "eegvision demo") -> Path:
    """Write ``REPORT/index.html`` (+ ``figures/``) from a demo folder; return the HTML path.

    Parameters
    ----------
    demo_dir : path
        Folder written by :func:`eegvision.demo.run.run_demo` (must hold ``demo.json``).
    report_dir : path, optional
        Output folder (default ``DEMO/report``).
    title : str
        Page title.
    """
    from eegvision.training.rundir import UnitFolder

    demo_dir = Path(demo_dir)
    summary = _read_json(demo_dir / "demo.json")
    if summary is None:
        raise FileNotFoundError(f"{demo_dir / 'demo.json'} not found: {demo_dir} is not a finished demo folder "
                                "(run `eegvision demo --out DIR`).")
    report_dir = Path(report_dir) if report_dir is not None else demo_dir / "report"
    fig_dir = report_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    from eegvision.evaluation.results import read_results

    metrics_path = demo_dir / summary["metrics_file"] if summary.get("metrics_file") else None
    rows = read_results(metrics_path) if metrics_path is not None and metrics_path.is_file() else []
    head = summary["headline"]
    stages = {s["name"]: s for s in summary.get("stages", [])}
    parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
    preset = summary.get("preset", {})
    parts.append(
        f'<p class="note">Simulated world, preset <b>{html.escape(str(preset.get("name", "?")))}</b>: '
        f'{preset.get("n_train_concepts", "?")} training concepts × {preset.get("n_train_images", "?")} images '
        f'({preset.get("train_reps", "?")} repetitions), {preset.get("n_test_concepts", "?")} held-out test concepts '
        f'({preset.get("test_reps", "?")} repetitions, averaged at test time); seed {summary.get("seed")}. '
        f"The EEG is aligned to {html.escape(_feature_space(stages))}. Test concepts are never seen in training "
        "(zero-shot).</p>")
    parts.append('<div id="img-warning">Some figures failed to load.</div>')

    # -- headline cards
    k = int(head.get("k", 200))
    cards = [("top1", f"{k}-way top-1", "encoder, mean over subjects"), ("top5", f"{k}-way top-5", ""),
             ("ceiling_top1", "Bayes ceiling top-1", "decoder that knows the simulator"),
             ("ridge_top1", "ridge top-1", "baseline on averaged trials"), ("chance_top1", "chance top-1", f"1/{k}")]
    parts.append('<h2>Headline</h2><div class="cards">' + "".join(
        f'<div class="card"><div class="s">{html.escape(label)}</div>'
        f'<div class="v" data-key="headline/{key}" data-value="{float(head[key])!r}">{float(head[key]):.3f}</div>'
        f'<div class="s">{html.escape(sub)}</div></div>'
        for key, label, sub in cards if head.get(key) is not None) + "</div>")
    if head.get("ceiling_top1"):
        parts.append(f'<p class="note">The encoder reaches <b>{head["top1"] / head["ceiling_top1"]:.0%}</b> of the '
                     "Bayes ceiling's top-1 on the same data.</p>")

    # -- k-way bars
    if rows:
        ceil = {"top1": head.get("ceiling_top1"), "top5": head.get("ceiling_top5")}
        ridge = {"top1": head.get("ridge_top1"), "top5": head.get("ridge_top5")}
        figs.kway_bars(rows, fig_dir / "kway.png", ceiling=ceil, ridge=ridge)
        parts.append("<h2>Zero-shot k-way accuracy</h2>" + _img("figures/kway.png", "k-way accuracy bars")
                     + '<p class="note">Exact expected accuracy over all distractor sets. Image: retrieval among the '
                       "test images' features; text: classification among the concepts' text features. Dashed lines: "
                       "chance. ★ Bayes ceiling and ◆ ridge at the largest k.</p>")

    # -- per-subject table
    per = summary.get("per_subject", {})
    if per:
        body = []
        for sub, v in per.items():
            body.append("<tr>" + _td(sub) + "".join(
                _num(v.get(c), f"per_subject/{sub}/{c}") for c in
                ("top1", "top5", "text_top1", "text_top5", "ceiling_top1", "ceiling_top5", "ridge_top1", "ridge_top5"))
                + "</tr>")
        parts.append(f"<h2>Per subject ({k}-way)</h2>" + _table(
            ["subject", "top-1", "top-5", "text top-1", "text top-5", "ceiling top-1", "ceiling top-5",
             "ridge top-1", "ridge top-5"], body))

    # -- metric table: every row of metrics.json
    if rows:
        body = []
        for r in sorted(rows, key=lambda r: (r["subject"], r["modality"], r["method"], int(r["k"]))):
            key = metric_key(r)
            body.append("<tr>" + _td(r["subject"]) + _td(r["modality"]) + _td(r["method"]) + _td(r["k"], "")
                        + _num(r["top1"], key + "/top1") + _num(r["top5"], key + "/top5")
                        + _num(r.get("top1_draw_std"), key + "/top1_draw_std") + "</tr>")
        parts.append("<h2>All metrics</h2><details open><summary>every row of run/metrics.json</summary>"
                     + _table(["subject", "modality", "method", "k", "top-1", "top-5", "top-1 draw s.d."], body, 4)
                     + '<p class="note">montecarlo: the reference protocol (random distractor draws, seeded); '
                       "its spread over draws is the last column.</p></details>")

    # -- training curves
    units = summary.get("units", {})
    histories = {sub: UnitFolder(demo_dir / u, sub).read_history() for sub, u in units.items()}
    histories = {s: h for s, h in histories.items() if h}
    if histories:
        figs.training_curves(histories, fig_dir / "training.png")
        fit = summary.get("settings", {})
        parts.append("<h2>Training</h2>" + _img("figures/training.png", "training curves")
                     + f'<p class="note">Encoder <b>{html.escape(str(fit.get("encoder")))}</b>, {fit.get("epochs")} '
                       "epochs, model selected on validation top-1 of held-out training concepts (never the test "
                       "set).</p>")

    # -- retrieval gallery (real: the test images the EEG embedding ranked first)
    gallery = _retrieval_gallery(demo_dir, summary, fig_dir)
    if gallery:
        parts.append("<h2>What the decoder picked</h2>" + _img(gallery, "retrieval gallery")
                     + '<p class="note">Left: the image seen. Right: the three test images whose features are closest '
                       "to the EEG embedding (first subject; green frame = correct).</p>")

    # -- optional stages
    parts.append(_prior_section(stages.get("prior")))
    parts.append(_recon_section(demo_dir, stages.get("reconstruct"), stages.get("score"), fig_dir))
    parts.append(_lowlevel_section(demo_dir, stages.get("low-level"), fig_dir))
    parts.append(_caption_section(stages.get("caption")))
    parts.append(_analysis_section(demo_dir, stages.get("analysis"), fig_dir))

    # -- stages
    body = []
    for s in summary.get("stages", []):
        body.append(f'<tr>{_td(s["name"])}<td class="l {s["status"]}">{html.escape(s["status"])}</td>'
                    f'<td>{s["wall_s"]:.1f}</td>{_td(s.get("reason", ""))}</tr>')
    parts.append("<h2>Pipeline</h2>" + _table(["stage", "status", "seconds", "note"], body)
                 + f'<p class="note">Total {summary.get("wall_s", 0):.0f} s. Skipped stages are not replaced by '
                   "stand-ins.</p>")
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(p for p in parts if p) + f"<script>{_SCRIPT}</script></body></html>\n")
    out = report_dir / "index.html"
    write_text_atomic(out, page)
    return out


def _retrieval_gallery(demo_dir: Path, summary: Mapping, fig_dir: Path, n: int = 6) -> str | None:
    """Figure of seen vs top-ranked test images for the first subject (from the stored test embeddings)."""
    from eegvision.features.files import load_features
    from eegvision.training.rundir import UnitFolder

    units = summary.get("units", {})
    feats = demo_dir / "store" / "features" / "test.safetensors"
    images = demo_dir / "data" / "test_images"
    if not units or not feats.is_file() or not images.is_dir():
        return None
    sub, unit = next(iter(units.items()))
    emb = UnitFolder(demo_dir / unit, sub).read_test_embeddings().get(sub)
    if emb is None:
        return None
    from eegvision.readers.images import scan_image_folder

    paths = scan_image_folder(images).paths
    f = load_features(feats).image.float()
    e = emb.float()
    sims = (e / e.norm(dim=1, keepdim=True)) @ (f / f.norm(dim=1, keepdim=True)).T
    ranked = np.argsort(-sims.numpy(), axis=1)
    pick = np.linspace(0, len(ranked) - 1, min(n, len(ranked))).astype(int)
    labels = [Path(paths[i]).parent.name.split("_", 1)[-1] for i in pick]
    # re-index so that query j's truth is candidate j in the figure function: pass the full path list
    rank_sel = ranked[pick]
    gt_sel = list(paths)
    figs_path = fig_dir / "retrieval.png"
    _gallery_with_truth(gt_sel, rank_sel, pick, labels, figs_path)
    return "figures/retrieval.png"


def _gallery_with_truth(paths: Sequence, ranked: np.ndarray, truth: np.ndarray, labels: Sequence[str],
                        out: Path) -> None:
    """Map the selected queries onto :func:`figures.retrieval_gallery` (truth of row i is ``truth[i]``)."""
    order = list(truth) + [j for j in range(len(paths)) if j not in set(truth)]
    where = {old: new for new, old in enumerate(order)}
    reindexed = np.vectorize(where.get)(ranked)
    figs.retrieval_gallery([paths[j] for j in order], reindexed, out, labels)


def _feature_space(stages: Mapping) -> str:
    sim = stages.get("simulate") or {}
    return (sim.get("outputs") or {}).get("feature_space") or "the simulator's image/text feature space"


def _status(stage: Mapping | None, name: str) -> str:
    if stage is None:
        return f'<p class="skipped">{html.escape(name)}: not run.</p>'
    return (f'<p class="{stage["status"]}">{html.escape(name)}: {html.escape(stage["status"])}'
            + (f' — {html.escape(stage["reason"])}' if stage.get("reason") else "") + "</p>")


def _prior_section(stage: Mapping | None) -> str:
    head = "<h2>Diffusion prior (Stage I)</h2>"
    if not stage or stage["status"] != "ran":
        return head + _status(stage, "prior")
    out = stage["outputs"]
    body = []
    for sub, v in out.get("subjects", {}).items():
        t = v.get("test", {})
        body.append("<tr>" + _td(sub) + "".join(_num(t.get(c), f"prior/{sub}/{c}") for c in
                                               ("raw_cosine", "prior_cosine", "raw_top1", "prior_top1",
                                                "raw_top5", "prior_top5")) + "</tr>")
    o = out.get("output", {})
    used = (f"fitted on {o.get('fitted_on', 'single training trials')}; its output as used is the mean of "
            f"{o.get('num_samples', 1)} sample(s) at guidance {o.get('guidance_scale', 5.0):g}" if o else
            "fitted on single training trials")
    return (head + f'<p class="note">{html.escape(used)}; target space: {html.escape(out.get("space", ""))}. '
            "Test set: is the prior's output closer to the seen image's features than the raw EEG embedding?</p>"
            + _table(["subject", "cosine (raw EEG)", "cosine (prior)", "top-1 (raw)", "top-1 (prior)",
                      "top-5 (raw)", "top-5 (prior)"], body) + _prior_flag(out.get("subjects", {})))


def _prior_flag(subjects: Mapping) -> str:
    """A flag when the prior's samples are further from the seen images than the raw EEG embeddings."""
    worse = {sub: v["test"] for sub, v in subjects.items()
             if isinstance(v.get("test", {}).get("prior_cosine"), (int, float))
             and isinstance(v["test"].get("raw_cosine"), (int, float))
             and v["test"]["prior_cosine"] < v["test"]["raw_cosine"]}
    if not worse:
        return ""
    which = "; ".join(f"{sub}: cosine {t['prior_cosine']:.3f} with the prior, {t['raw_cosine']:.3f} without"
                      for sub, t in worse.items())
    return (f'<p class="flag">The prior makes the embeddings worse ({html.escape(which)}). Images and captions '
            "made through it start further from the seen image than the EEG embedding itself: use --no-prior with "
            "`eegvision reconstruct` and `eegvision caption`, or fit the prior longer or on more trials.</p>")


def _recon_section(demo_dir: Path, stage: Mapping | None, score: Mapping | None, fig_dir: Path) -> str:
    head = "<h2>Reconstructions</h2>"
    if not stage or stage["status"] != "ran":
        return head + _status(stage, "reconstruct") + _status(score, "score")
    out = stage["outputs"]
    parts = [head]
    grid = out.get("grid")  # [[gt, rec, ...], ...] relative to demo_dir
    if grid:
        rows = [[demo_dir / p if p else None for p in r] for r in grid]
        figs.image_grid(rows, fig_dir / "reconstructions.png", out.get("labels", [""] * len(rows)),
                        out.get("columns") or ["seen"] + [f"sample {i + 1}" for i in range(len(grid[0]) - 1)])
        parts.append(_img("figures/reconstructions.png", "ground truth and reconstructions")
                     + '<p class="note">Seen image, then one image per subject drawn by the world\'s trained generator '
                       "from the prior's sample for that subject's EEG, then the image the generator draws from the "
                       "seen image's own embedding (what a perfect decoder would give).</p>")
    if score and score["status"] == "ran":
        body = [f"<tr>{_td(name)}" + _num(v, f"score/{name}") + "</tr>"
                for name, v in score["outputs"].get("metrics", {}).items()]
        parts.append(_table(["metric", "value"], body)
                     + f'<p class="note">{html.escape(score["outputs"].get("note", ""))}</p>')
    else:
        parts.append(_status(score, "score"))
    return "".join(parts)


def _lowlevel_section(demo_dir: Path, stage: Mapping | None, fig_dir: Path) -> str:
    """The low-level path: PixCorr and SSIM with and without it, and a grid of its images."""
    head = "<h2>Low-level path (EEG → VAE latent → img2img)</h2>"
    if not stage or stage["status"] != "ran":
        return head + _status(stage, "low-level")
    out = stage["outputs"]
    sub = out.get("subject", "")
    parts = [head]
    grid = out.get("grid")
    if grid:
        rows = [[demo_dir / p if p else None for p in r] for r in grid]
        figs.image_grid(rows, fig_dir / "lowlevel.png", out.get("labels", [""] * len(rows)), out.get("columns"))
        parts.append(_img("figures/lowlevel.png", "low-level path images"))
    m = out.get("metrics", {})
    names = [f"{sub} without low-level", f"{sub} with low-level", f"{sub} low-level init", "VAE of the seen image"]
    body = []
    for name in names:
        tag = name.replace(" ", "_")
        if f"{tag}/pixcorr" in m:
            body.append(f"<tr>{_td(name)}" + _num(m[f"{tag}/pixcorr"], f"low-level/{tag}/pixcorr")
                        + _num(m[f"{tag}/ssim"], f"low-level/{tag}/ssim") + "</tr>")
    parts.append(_table(["images", "PixCorr", "SSIM"], body))
    test = out.get("test_latents") or {}
    parts.append(f'<p class="note">{html.escape(sub)}: a ridge regressor (penalty {out.get("alpha", float("nan")):.3g} by '
                 f'grouped CV, R² {out.get("cv_r2", float("nan")):.3f}) maps the averaged EEG to the world VAE\'s '
                 f'{"x".join(map(str, out.get("latent_shape", [])))} latents (test latent correlation '
                 f'{test.get("latent_corr", float("nan")):.3f}, shuffled pairs {test.get("latent_corr_shuffled", float("nan")):.3f}); '
                 "the decoded latent is the init of the world generator's img2img at strength "
                 f'{out.get("strength")}, conditioned on the same prior samples as the reconstructions above. '
                 "The last row is the VAE's own reconstruction of the seen image: what a perfect latent gives.</p>")
    return "".join(parts)


def _caption_section(stage: Mapping | None) -> str:
    head = "<h2>Captions</h2>"
    if not stage or stage["status"] != "ran":
        return head + _status(stage, "caption")
    out = stage["outputs"]
    body = [f"<tr>{_td(r['concept'])}{_td(r['caption'])}{_td(r['reference'])}</tr>" for r in out.get("examples", [])]
    metrics = "".join(f"<tr>{_td(k)}" + _num(v, f"caption/{k}") + "</tr>" for k, v in out.get("metrics", {}).items())
    return head + _caption_flag(out) + _table(["concept", "decoded caption", "ground-truth caption"], body) + (
        _table(["caption metric", "value"], [metrics]) if metrics else "")


def _caption_flag(outputs: Mapping) -> str:
    """A flag when decoded captions loop on words (all captions when the stage lists them, else its examples)."""
    from eegvision.metrics.repetition import caption_repetition

    captions = outputs.get("captions") or [r["caption"] for r in outputs.get("examples", [])]
    looping = [(c, caption_repetition(c)) for c in captions]
    looping = [(c, why) for c, why in looping if why]
    if not looping:
        return ""
    caption, why = looping[0]
    return (f'<p class="flag">{len(looping)} of {len(captions)} decoded captions repeat themselves (e.g. '
            f'"{html.escape(caption)}": {html.escape(why)}). The captioner has degenerated, so its scores say little: '
            "train it longer or on more captions (`eegvision caption-fit`).</p>")


def _analysis_section(demo_dir: Path, stage: Mapping | None, fig_dir: Path) -> str:
    head = "<h2>Analyses: channel importance, time and regions</h2>"
    if not stage or stage["status"] != "ran":
        return head + _status(stage, "analysis")
    out = stage["outputs"]
    parts = [head]
    for sub, v in out.get("topomaps", {}).items():
        p = figs.topomap(np.asarray(v["values"]), v["ch_names"], fig_dir / f"topomap_{sub}.png",
                         title=f"{sub}: {v.get('what', 'channel importance')}")
        parts.append(_img(f"figures/{p.name}", f"topomap {sub}"))
    captions = {"time": "When: ridge decoding accuracy in sliding 100-ms windows (chance line dashed).",
                "regions": "Where: ridge decoding accuracy from each scalp region's channels.",
                "rsa": "Representations: EEG-embedding vs image-embedding dissimilarity matrices (Spearman RSA).",
                "tsne": "t-SNE of the test EEG embeddings, coloured by the concept's shape."}
    for name, fig in out.get("figures", {}).items():
        src = demo_dir / fig["figure"]
        if src.is_file():
            dst = fig_dir / f"analysis_{name}.png"
            shutil.copyfile(src, dst)
            parts.append(f"<h3>{html.escape(captions.get(name, name))}</h3>" + _img(f"figures/{dst.name}", name))
    return "".join(parts)
