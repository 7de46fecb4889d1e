"""A static HTML report of any run folder written by ``eegvision fit`` (or ``finetune``), figures beside it.

``build_run_report(run_dir, report_dir)`` reads the run through :class:`~eegvision.training.rundir.RunFolder`:
its config (encoder, protocol, data, features, seed), every unit's result rows and history, and the selected
epochs. It writes ``REPORT/index.html`` with the k-way accuracy bars (chance lines), the headline numbers at the
largest k, a table of every result row, the training curves and what each unit selected. Numbers carry the same
``data-key``/``data-value`` attributes as the demo report, so a test (or a person) can check the page against
``metrics.json``. For a demo folder use :func:`eegvision.report.html.build_report`; :func:`report_folder`
chooses between the two.
"""

from __future__ import annotations

import html
from pathlib import Path

from eegvision.report import figures as figs
from eegvision.report.html import _CSS, _SCRIPT, _img, _num, _table, _td, build_report, metric_key
from eegvision.utils import write_text_atomic

__all__ = ["build_run_report", "report_folder"]


def report_folder(folder: str | Path, report_dir: str | Path | None = None) -> Path:
    """The report of ``folder``: a demo folder (``demo.json``) or a run folder (``config.json`` of a run)."""
    from eegvision.training.rundir import RunFolder

    folder = Path(folder)
    if (folder / "demo.json").is_file():
        return build_report(folder, report_dir)
    if RunFolder(folder).exists():
        return build_run_report(folder, report_dir)
    raise FileNotFoundError(f"{folder} is neither a demo folder (no demo.json) nor a run folder (no config.json "
                            "written by `eegvision fit`); give the folder that `eegvision demo --out` or "
                            "`eegvision fit --out` wrote.")


def build_run_report(run_dir: str | Path, report_dir: str | Path | None = None, title: str | None = None) -> Path:
    """Write ``REPORT/index.html`` (+ ``figures/``) for a run folder; return the HTML path.

    Parameters
    ----------
    run_dir : path
        A run folder (one unit, or several as ``RUN/<unit>/``).
    report_dir : path, optional
        Output folder (default ``RUN/report``).
    title : str, optional
        Page title (default: the run folder's name and encoder).
    """
    from eegvision.training.rundir import RunFolder

    run = RunFolder.open(run_dir)
    cfg = run.fit_config()
    units = run.units()
    rows = [r for u in units if u.has_metrics() for r in u.read_metrics()]
    if not rows:
        raise FileNotFoundError(f"{run.path} has no results yet (no metrics.json in its units); finish or resume "
                                "the run (`eegvision fit ... --resume`), or evaluate it (`eegvision evaluate RUN`).")
    report_dir = Path(report_dir) if report_dir is not None else run.path / "report"
    fig_dir = report_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    title = title or f"eegvision run {run.path.name} ({cfg.encoder})"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="note">Encoder <b>{html.escape(cfg.encoder)}</b>, protocol <b>{html.escape(cfg.protocol)}'
             f"</b>, subjects {html.escape(', '.join(cfg.subjects) or 'all (leave one out)')}, {cfg.epochs} epochs, "
             f"seed {cfg.seed}; data {html.escape(str(cfg.data))}. The model of each unit is selected on "
             f"{html.escape(cfg.selection)} of held-out training concepts, never on the test set.</p>",
             '<div id="img-warning">Some figures failed to load.</div>']

    exact = [r for r in rows if r.get("method") == "exact" and r.get("modality") == "image"]
    if exact:
        k = max(int(r["k"]) for r in exact)
        at_k = [r for r in exact if int(r["k"]) == k]
        cards = [(f"{k}-way top-1", sum(r["top1"] for r in at_k) / len(at_k), "headline/top1"),
                 (f"{k}-way top-5", sum(r["top5"] for r in at_k) / len(at_k), "headline/top5"),
                 ("chance top-1", 1.0 / k, "headline/chance_top1")]
        parts.append('<h2>Headline</h2><div class="cards">' + "".join(
            f'<div class="card"><div class="s">{html.escape(label)}</div><div class="v" data-key="{key}" '
            f'data-value="{value!r}">{value:.3f}</div><div class="s">image retrieval, mean over subjects</div></div>'
            for label, value, key in cards) + "</div>")
    figs.kway_bars(rows, fig_dir / "kway.png")
    parts.append("<h2>Zero-shot k-way accuracy</h2>" + _img("figures/kway.png", "k-way accuracy bars")
                 + '<p class="note">Exact expected accuracy over all distractor sets; dashed lines: chance.</p>')

    body = []
    for r in sorted(rows, key=lambda r: (r["subject"], r["modality"], r["method"], int(r["k"]))):
        key = metric_key(r)
        body.append("<tr>" + _td(r["subject"]) + _td(r["modality"]) + _td(r["method"]) + _td(r["k"], "")
                    + _num(r["top1"], key + "/top1") + _num(r["top5"], key + "/top5") + "</tr>")
    parts.append("<h2>All metrics</h2>" + _table(["subject", "modality", "method", "k", "top-1", "top-5"], body, 4))

    histories = {u.name: u.read_history() for u in units}
    histories = {name: h for name, h in histories.items() if h}
    if histories:
        figs.training_curves(histories, fig_dir / "training.png")
        parts.append("<h2>Training</h2>" + _img("figures/training.png", "training curves"))
    sel = []
    for u in units:
        s = u.read_selection()
        if s:
            epoch = s.get("selected_epoch", "")
            if epoch is None and s.get("member_epochs") is not None:  # a seed ensemble: each member's epoch
                epoch = "members: " + ", ".join(str(e) for e in s["member_epochs"])
            sel.append("<tr>" + _td(u.name) + _td(s.get("selection", "")) + _td(epoch, "")
                       + _num(s.get("best_val"), f"selection/{u.name}/best_val") + "</tr>")
    if sel:
        parts.append("<h2>Model selection</h2>" + _table(["unit", "rule", "selected epoch", "best value"], sel))

    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts) + f"<script>{_SCRIPT}</script></body></html>\n")
    out = report_dir / "index.html"
    write_text_atomic(out, page)
    return out
