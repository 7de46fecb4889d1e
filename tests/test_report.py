"""The static HTML report: built from result files, opened in headless Chromium, numbers checked against the files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from eegvision.evaluation.results import write_results
from eegvision.report.html import build_report, metric_key

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _rows() -> list[dict]:
    rng = np.random.default_rng(3)
    rows = []
    for sub in ("sub-01", "sub-02"):
        for modality in ("image", "text"):
            for method in ("exact", "montecarlo"):
                for k in (2, 10, 20):
                    top1 = float(rng.uniform(1 / k, 1))
                    rows.append({"subject": sub, "modality": modality, "method": method, "k": k, "top1": top1,
                                 "top5": float(min(1.0, top1 + 0.2)), "encoder": "eegproject"})
    return rows


def make_demo_folder(root: Path) -> dict:
    """A finished-demo layout written by hand: demo.json, run/metrics.json, history.csv, test images."""
    from PIL import Image

    rows = _rows()
    write_results(rows, root / "run" / "metrics.json")
    for sub in ("sub-01", "sub-02"):
        (root / "run" / sub).mkdir(parents=True, exist_ok=True)
        lines = ["epoch,train_loss,val_loss,val_top1,val_top5,lr,temperature"]
        lines += [f"{e},{3 - 0.2 * e},{3.1 - 0.1 * e},{0.1 * e},{0.2 * e},0.001,0.07" for e in range(5)]
        (root / "run" / sub / "history.csv").write_text("\n".join(lines) + "\n")
    per = {}
    for sub in ("sub-01", "sub-02"):
        pick = {r["modality"]: r for r in rows if r["subject"] == sub and r["method"] == "exact" and r["k"] == 20}
        per[sub] = {"top1": pick["image"]["top1"], "top5": pick["image"]["top5"], "text_top1": pick["text"]["top1"],
                    "text_top5": pick["text"]["top5"], "ceiling_top1": 0.9, "ceiling_top5": 1.0,
                    "ridge_top1": 0.2, "ridge_top5": 0.5}
    headline = {"k": 20, "top1": float(np.mean([v["top1"] for v in per.values()])),
                "top5": float(np.mean([v["top5"] for v in per.values()])), "ceiling_top1": 0.9, "ceiling_top5": 1.0,
                "ridge_top1": 0.2, "ridge_top5": 0.5, "chance_top1": 0.05, "chance_top5": 0.25, "n_test": 20}
    # a reconstruction stage with real image files, to exercise the image grid
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30)]):
        d = root / "recon" / f"{i:05d}"
        d.mkdir(parents=True)
        Image.new("RGB", (16, 16), colour).save(d / "gt.png")
        Image.new("RGB", (16, 16), colour[::-1]).save(d / "0.png")
    stages = [
        {"name": "fit", "status": "ran", "wall_s": 1.0, "reason": "", "outputs": {}},
        {"name": "reconstruct", "status": "ran", "wall_s": 1.0, "reason": "", "outputs": {
            "grid": [[f"recon/{i:05d}/gt.png", f"recon/{i:05d}/0.png"] for i in range(2)], "labels": ["a", "b"]}},
        {"name": "score", "status": "ran", "wall_s": 1.0, "reason": "", "outputs": {
            "metrics": {"pixcorr": 0.123456, "ssim": 0.5}, "note": "world image space"}},
        {"name": "caption", "status": "skipped", "wall_s": 0.0, "reason": "no captioner", "outputs": {}},
    ]
    summary = {"eegvision_demo": 1, "seed": 0, "settings": {"encoder": "eegproject", "epochs": 5},
               "preset": {"name": "tiny"}, "headline": headline, "per_subject": per,
               "units": {"sub-01": "run/sub-01", "sub-02": "run/sub-02"}, "stages": stages, "wall_s": 4.0,
               "metrics_file": "run/metrics.json"}
    (root / "demo.json").write_text(json.dumps(summary))
    return summary


class _Collect(HTMLParser):
    """Collect (data-key, data-value, text) of every element with a data-key, and img attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, tuple[float | None, str]] = {}
        self.imgs: list[dict] = []
        self.body: dict = {}
        self._open: list[str] = []
        self._text: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        if tag == "body":
            self.body = a
        if "data-key" in a:
            key = a["data-key"]
            self.values[key] = (float(a["data-value"]) if "data-value" in a else None, "")
            self._open.append(key)
            self._text[key] = ""
        else:
            self._open.append("")

    def handle_endtag(self, tag):
        if tag == "img" or not self._open:
            return
        key = self._open.pop()
        if key:
            self.values[key] = (self.values[key][0], self._text[key].strip())

    def handle_data(self, data):
        for k in self._open:
            if k:
                self._text[k] += data


def _check_numbers(page: Collector, summary: dict, rows: list[dict]) -> None:
    for r in rows:
        for col in ("top1", "top5"):
            value, text = page.values[f"{metric_key(r)}/{col}"]
            assert value == pytest.approx(r[col], abs=1e-12)
            assert text == f"{r[col]:.3f}"
    for key in ("top1", "top5", "ceiling_top1", "ridge_top1", "chance_top1"):
        value, text = page.values[f"headline/{key}"]
        assert value == pytest.approx(summary["headline"][key], abs=1e-12) and text == f"{summary['headline'][key]:.3f}"
    for sub, v in summary["per_subject"].items():
        for col, want in v.items():
            value, text = page.values[f"per_subject/{sub}/{col}"]
            assert value == pytest.approx(want, abs=1e-12) and text == f"{want:.3f}"


Collector = _Collect


def test_report_html_matches_result_files(tmp_path):
    summary = make_demo_folder(tmp_path)
    path = build_report(tmp_path)
    page = _Collect()
    page.feed(path.read_text())
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())["rows"]
    _check_numbers(page, summary, rows)
    srcs = [i["src"] for i in page.imgs]
    assert set(srcs) == {"figures/kway.png", "figures/training.png", "figures/reconstructions.png"}
    for s in srcs:  # relative paths beside the page, real PNGs
        assert not Path(s).is_absolute() and (path.parent / s).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.values["score/pixcorr"][1] == "0.123"
    text = path.read_text()
    assert "no captioner" in text and "skipped" in text


def test_report_needs_demo_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="demo.json"):
        build_report(tmp_path)


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make test` installs Debian's chromium: "
                                             "apt-get install -y chromium)")
def test_report_renders_in_chromium(tmp_path):
    summary = make_demo_folder(tmp_path / "demo")
    path = build_report(tmp_path / "demo")
    url = path.resolve().as_uri()
    dom = _chromium(["--virtual-time-budget=5000", "--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = _Collect()
    page.feed(dom.stdout)
    # the page's own script ran after load and marked every image
    assert page.body.get("data-images-loaded") == f"{len(page.imgs)}/{len(page.imgs)}", page.body
    assert len(page.imgs) == 3 and all(i.get("data-loaded") == "true" for i in page.imgs)
    rows = json.loads((tmp_path / "demo" / "run" / "metrics.json").read_text())["rows"]
    _check_numbers(page, summary, rows)
    # and a screenshot is drawn (not blank)
    shot = tmp_path / "shot.png"
    res = _chromium(["--window-size=1000,1400", f"--screenshot={shot}", url], tmp_path)
    assert res.returncode == 0 and shot.is_file()
    from PIL import Image

    arr = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert arr.std() > 5  # text and figures, not a blank page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_broken_image_is_reported_by_the_page(tmp_path):
    make_demo_folder(tmp_path / "demo")
    path = build_report(tmp_path / "demo")
    (path.parent / "figures" / "training.png").unlink()
    dom = _chromium(["--virtual-time-budget=5000", "--dump-dom", path.resolve().as_uri()], tmp_path)
    page = _Collect()
    page.feed(dom.stdout)
    assert page.body.get("data-images-loaded") == "2/3"
    assert re.search(r'id="img-warning" style="display: block', dom.stdout)


def test_kway_legend_covers_no_bar_or_marker():
    """The legend sits outside both axes: it overlaps no bar, subject dot, ceiling star or ridge diamond."""
    from eegvision.report.figures import kway_figure

    rows = [{"method": "exact", "modality": m, "k": k, "subject": s, "top1": 0.9 - 0.001 * k, "top5": 0.99}
            for m in ("image", "text") for k in (2, 10, 50, 200) for s in ("sub-01", "sub-02")]
    fig = kway_figure(rows, ceiling={"top1": 0.97, "top5": 1.0}, ridge={"top1": 0.4, "top5": 0.7})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    marks = []
    for ax in fig.axes:
        assert ax.get_legend() is None
        marks += [p.get_window_extent(renderer) for p in ax.patches]
        for coll in ax.collections:
            offsets = ax.transData.transform(coll.get_offsets())
            marks += [type(legend).from_bounds(x - 1, y - 1, 2, 2) for x, y in offsets]
        star = [c for c in ax.collections if c.get_label().startswith("Bayes")][0]
        assert ax.get_xlim()[1] > star.get_offsets()[0][0]  # the star is inside the axes
    assert len(marks) > 30
    assert not [m for m in marks if legend.overlaps(m)]
    assert {t.get_text() for t in fig.legends[0].get_texts()} >= {"Bayes ceiling (200-way)", "ridge (200-way)"}


def test_any_run_folder_gets_a_report(tmp_path, monkeypatch):
    """`eegvision report RUN` on a run of `eegvision fit` (not a demo): every number equals metrics.json."""
    from decode_helpers import make_problem, patch_open_data
    from typer.testing import CliRunner

    from eegvision.cli.main import app
    from eegvision.training.config import FitConfig
    from eegvision.training.fitting import fit

    store, data = make_problem(tmp_path, n_subjects=2)
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-01", "sub-02"], encoder="eegproject", epochs=2, batch_size=16,
                    lr=3e-3, val_fraction=0.2, eval_ks=[2, 10, 20], eval_methods=["exact"])
    run = fit(cfg, tmp_path / "run").run
    res = CliRunner().invoke(app, ["report", str(run.path)])
    assert res.exit_code == 0, res.output
    path = run.path / "report" / "index.html"
    page = _Collect()
    page.feed(path.read_text())
    rows = run.unit("sub-01").read_metrics() + run.unit("sub-02").read_metrics()
    assert len(rows) == 12
    for r in rows:
        key = metric_key(r)
        assert page.values[key + "/top1"][0] == r["top1"] and page.values[key + "/top5"][0] == r["top5"]
    at20 = [r["top1"] for r in rows if r["modality"] == "image" and r["k"] == 20]
    assert page.values["headline/top1"][0] == pytest.approx(sum(at20) / 2)
    assert {i["src"] for i in page.imgs} == {"figures/kway.png", "figures/training.png"}
    assert "selected epoch" in path.read_text()
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "is neither a demo folder (no demo.json) nor a run folder" in " ".join(res.output.split())


def test_report_flags_a_prior_that_hurts_and_looping_captions(tmp_path):
    summary = make_demo_folder(tmp_path)
    test = {"raw_cosine": 0.52, "prior_cosine": 0.41, "raw_top1": 0.3, "prior_top1": 0.2}
    good = {"raw_cosine": 0.40, "prior_cosine": 0.55, "raw_top1": 0.3, "prior_top1": 0.4}
    captions = ["a medium red red red red the the, on a sand background", "a blue square on a grey background",
                "a green circle on the on the grass"]
    summary["stages"] += [
        {"name": "prior", "status": "ran", "wall_s": 1.0, "reason": "", "outputs": {
            "space": "world CLIP", "subjects": {"sub-01": {"test": test}, "sub-02": {"test": good}}}},
        {"name": "caption", "status": "ran", "wall_s": 1.0, "reason": "", "outputs": {
            "metrics": {"BLEU-4": 0.1}, "captions": captions,
            "examples": [{"concept": "c", "caption": c, "reference": "r"} for c in captions[:2]]}},
    ]
    summary["stages"] = [s for s in summary["stages"] if s["name"] != "caption" or s["status"] == "ran"]
    (tmp_path / "demo.json").write_text(json.dumps(summary))
    text = build_report(tmp_path).read_text()
    assert ("The prior makes the embeddings worse (sub-01: cosine 0.410 with the prior, 0.520 without)."
            in text) and "sub-02: cosine" not in text
    assert ("2 of 3 decoded captions repeat themselves (e.g. \"a medium red red red red the the, on a sand "
            "background\": &#x27;red&#x27; 4 times in a row)." in text)
    assert "eegvision score`" not in text


def test_report_has_no_flag_for_a_helpful_prior_and_clean_captions(tmp_path):
    from eegvision.metrics.repetition import caption_repetition

    summary = make_demo_folder(tmp_path)
    summary["stages"] += [{"name": "prior", "status": "ran", "wall_s": 1.0, "reason": "", "outputs": {
        "subjects": {"sub-01": {"test": {"raw_cosine": 0.4, "prior_cosine": 0.5}}}}}]
    (tmp_path / "demo.json").write_text(json.dumps(summary))
    text = build_report(tmp_path).read_text()
    assert 'class="flag"' not in text
    assert caption_repetition("a red car next to a red hat") == ""
    assert caption_repetition("on the on the grass") == "'on the' twice in a row"
