"""An HTML evaluation report with PNG plots (ROC, calibration, reliability, permutation importance, score
distribution) and the monotonicity check's table."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.evaluate import CALIBRATION_BINS, expected_calibration_error
from models.monotonic import CHECK_POINTS, CHECK_QUANTILES, TOLERANCE
from models.pipeline import Evaluation


def new_figure(size: tuple[float, float] = (6, 4.2)) -> Any:
    """A fresh matplotlib figure and axes on the non-interactive backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=size, dpi=100)


def save_png(fig: Any, path: Path) -> str:
    """Save and close ``fig``; returns the file name."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path.name


def plot_roc(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> str:
    """ROC curves of the model and baselines."""
    from sklearn.metrics import roc_auc_score, roc_curve
    fig, ax = new_figure()
    for name, p in curves.items():
        if len(np.unique(p)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right", fontsize=8)
    return save_png(fig, path)


def plot_calibration(table: pd.DataFrame, path: Path) -> str:
    """Mean predicted vs observed default rate per score bin."""
    fig, ax = new_figure()
    hi = float(max(table["mean_predicted"].max(), table["observed"].max(), 1e-3)) * 1.05
    ax.plot([0, hi], [0, hi], color="grey", linestyle=":")
    ax.plot(table["mean_predicted"], table["observed"], marker="o")
    ax.set(xlabel="mean predicted P(default)", ylabel="observed default rate", title="Calibration (equal-count bins)")
    return save_png(fig, path)


def reliability_figure(table: pd.DataFrame, ece: float) -> Any:
    """Observed vs mean predicted default rate per bin on 0-1 axes, the same zoomed to where the scores are
    (equal-count bins crowd near 0 when defaults are rare), and the loans in each bin."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(9, 6.5), dpi=100)
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1.3])
    full, zoom, counts = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    hi = min(1.0, float(max(table["mean_predicted"].max(), table["observed"].max(), 1e-3)) * 1.15)
    for ax, top, title in ((full, 1.0, "0 to 1"), (zoom, hi, f"zoomed to 0 to {hi:.3g}")):
        ax.plot([0, top], [0, top], color="grey", linestyle=":", label="perfect calibration")
        ax.plot(table["mean_predicted"], table["observed"], marker="o", label="model")
        ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean predicted P(default)", ylabel="observed default rate",
               title=title)
    for _, row in table.iterrows():
        zoom.annotate(str(int(row["bin"])), (row["mean_predicted"], row["observed"]), textcoords="offset points",
                      xytext=(4, -10), fontsize=7)
    full.legend(loc="upper left", fontsize=8)
    bars = counts.bar(table["bin"], table["n"])
    counts.bar_label(bars, labels=[str(int(n)) for n in table["n"]], fontsize=8)
    counts.set(xticks=table["bin"], xlabel="bin (scores low to high; numbers as in the zoomed panel)",
               ylabel="loans", ylim=(0, float(table["n"].max()) * 1.2))
    fig.suptitle(f"Reliability: ECE {ece:.4f} over {len(table)} equal-count bins")
    return fig


def plot_reliability(table: pd.DataFrame, ece: float, path: Path) -> str:
    """The reliability diagram of :func:`reliability_figure`, saved to ``path``."""
    return save_png(reliability_figure(table, ece), path)


def plot_importance(table: pd.DataFrame, path: Path) -> str:
    """Permutation importance (ROC AUC drop) per feature."""
    fig, ax = new_figure()
    t = table.iloc[::-1]
    ax.barh(t["feature"], t["auc_drop_mean"], xerr=t["auc_drop_std"])
    ax.set(xlabel="ROC AUC drop when shuffled", title="Permutation importance")
    return save_png(fig, path)


def plot_distribution(y: np.ndarray, p: np.ndarray, threshold: float, path: Path) -> str:
    """Score histograms of defaulted and other loans, with the alert threshold."""
    fig, ax = new_figure()
    bins = np.linspace(0, max(float(p.max()), threshold) * 1.02 + 1e-9, 40)
    ax.hist(p[y == 0], bins=bins, alpha=0.6, density=True, label="not defaulted")
    ax.hist(p[y == 1], bins=bins, alpha=0.6, density=True, label="defaulted")
    ax.axvline(threshold, color="red", linestyle="--", label=f"alert threshold {threshold}")
    ax.set(xlabel="P(default)", ylabel="density", title="Score distribution")
    ax.legend(fontsize=8)
    return save_png(fig, path)


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    """HTML table: one row per model or baseline."""
    cols = ("n", "positives", "roc_auc", "pr_auc", "brier", "no_skill_brier", "ece", "ks", "log_loss")
    heads = [f"ece ({CALIBRATION_BINS} equal-count bins)" if c == "ece" else c for c in cols]
    head = "".join(f"<th>{c}</th>" for c in ("model", *heads, "confusion at threshold"))
    rows = []
    for name, m in metrics.items():
        c = m["confusion"]
        cells = "".join(f"<td>{m[k]:.4f}</td>" if isinstance(m.get(k), float) else f"<td>{m.get(k, '')}</td>"
                        for k in cols)
        conf = f"tp {c['tp']} fp {c['fp']} fn {c['fn']} tn {c['tn']}"
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}<td>{conf}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _comparison_table(comparison: dict[str, dict[str, Any]]) -> str:
    """HTML table: one row per calibration method, fitted and scored on the same rows."""
    cols = ("trained_on", "n", "positives", "roc_auc", "brier", "ece", "log_loss", "parity_max_abs_diff")
    head = "".join(f"<th>{c}</th>" for c in ("calibration", *cols))
    rows = []
    for name, m in comparison.items():
        cells = "".join(f"<td>{m[k]:.3g}</td>" if k == "parity_max_abs_diff" else
                        f"<td>{m[k]:.4f}</td>" if isinstance(m[k], float) else f"<td>{m[k]}</td>" for k in cols)
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _monotonicity_section(table: pd.DataFrame, constrained: bool | None) -> list[str]:
    """The monotonicity check: how the model was trained, what was varied, and the rows scored against a direction."""
    trained = {True: "trained with monotonic constraints", False: "trained without monotonic constraints",
               None: "trained before constraints were recorded (none)"}[constrained]
    low, high = (f"{q:.0%}" for q in CHECK_QUANTILES)
    text = (f"<p>The model was {trained}. For each feature with a declared direction (contracts/features.py; +1: "
            "a higher value must never lower P(default), -1: never raise it), sampled loans are scored with that "
            f"feature set to {CHECK_POINTS} points from its {low} to its {high} quantile, the others as they are. "
            f"A loan violates when its probability at a higher point is more than {TOLERANCE:g} against the direction "
            "from its value at a lower one; max_against is the largest such gap. Unconstrained models are checked "
            "the same way, which shows what the constraint changes.</p>")
    if table.empty:
        return ["<h2>Monotonicity</h2>", text, "<p>No feature of this model has a declared direction.</p>"]
    return ["<h2>Monotonicity</h2>", text,
            table.to_html(index=False, na_rep="constant", float_format=lambda v: f"{v:.4g}")]


def _write_page(out: Path, title: str, body: list[str]) -> Path:
    """``body`` as the report folder's index.html, titled ``title``."""
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    path = out / "index.html"
    path.write_text(page)
    return path


def write_report(ev: Evaluation, out_dir: str | Path, title: str, threshold: float = 0.5) -> Path:
    """Write ``index.html`` and its PNGs into ``out_dir``; returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = ev.rows.label
    imgs = [
        plot_roc(y, {"model": ev.model_p, **{k: v for k, v in ev.baselines.items() if k != "prevalence"}},
                 out / "roc.png"),
        plot_calibration(ev.calibration, out / "calibration.png"),
        plot_reliability(ev.calibration, expected_calibration_error(y, ev.model_p), out / "reliability.png"),
        plot_importance(ev.importance, out / "importance.png"),
        plot_distribution(y, ev.model_p, threshold, out / "score_distribution.png"),
    ]
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>model version {html.escape(ev.version)}; {ev.rows.n} loans, {ev.rows.positives} defaults "
            f"({ev.rows.prevalence:.2%}); source {html.escape(ev.rows.source)}</p>",
            "<h2>Metrics</h2>", _metrics_table(ev.metrics),
            "<h2>Lift by decile</h2>", ev.lift.to_html(index=False, float_format=lambda v: f"{v:.4f}"),
            "<h2>Calibration</h2>",
            f"<p>{CALIBRATION_BINS} equal-count score bins (tied scores share a bin); ECE is the loan-weighted "
            "mean of |observed - mean predicted| over them.</p>",
            ev.calibration.to_html(index=False, float_format=lambda v: f"{v:.4f}"),
            *([] if ev.calibration_comparison is None else [
                "<h2>Calibration methods on the same rows</h2>",
                "<p>The version's configuration refitted with each method on the earlier periods and scored "
                "through ONNX on these rows.</p>", _comparison_table(ev.calibration_comparison)]),
            *([] if ev.monotonicity is None else _monotonicity_section(ev.monotonicity, ev.constrained)),
            "<h2>Plots</h2>", *[f'<img src="{i}" alt="{i}">' for i in imgs]]
    return _write_page(out, title, body)


def plot_shadow(version: str, pairs: pd.DataFrame, path: Path) -> str:
    """Champion and challenger on the same loans: ROC curves and reliability (equal-count bins of each)."""
    from sklearn.metrics import roc_curve

    from models.evaluate import calibration_table
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    y = pairs["defaulted"].to_numpy()
    fig, (roc, rel) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100)
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":")
    top = 1e-3
    for name, col in (("champion", "champion"), (f"challenger {version}", "challenger")):
        p = pairs[col].to_numpy(dtype=np.float64)
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, p)
            roc.plot(fpr, tpr, label=name)
        table = calibration_table(y, p)
        rel.plot(table["mean_predicted"], table["observed"], marker="o",
                 label=f"{name} (ECE {expected_calibration_error(y, p):.4f})")
        top = max(top, float(table["mean_predicted"].max()), float(table["observed"].max()))
    rel.plot([0, top], [0, top], color="grey", linestyle=":", label="perfect calibration")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the same loans")
    rel.set(xlabel="mean predicted P(default)", ylabel="observed default rate", title="Reliability")
    roc.legend(loc="lower right", fontsize=8)
    rel.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"Shadow comparison: {len(y)} loans, {int(y.sum())} matured defaults")
    return save_png(fig, path)


def _shadow_table(result: dict[str, Any]) -> str:
    """One row per challenger: both models' metrics, the paired differences and the rule's decision."""
    def cell(v: Any) -> str:
        return html.escape(f"{v:.4f}" if isinstance(v, float) else str(v))
    head = ["challenger", "champion", "loans", "defaults", "AUC champion", "AUC challenger", "AUC gain (se)",
            "AUC gain 95% CI", "Brier diff (se)", "ECE champion", "ECE challenger", "ECE diff (se)", "promote", "why"]
    def diff(d: dict[str, Any], name: str) -> str:
        return f"{d[name]['diff']:+.4f} ({d[name]['se']:.4f})" if name in d else "-"

    rows = []
    for version, r in result["challengers"].items():
        d = r.get("differences") or {}
        ci = f"[{d['roc_auc']['ci_low']:+.4f}, {d['roc_auc']['ci_high']:+.4f}]" if d else "-"
        rows.append([version, ", ".join(r["champion_versions"]), r["loans"], r["defaults"],
                     r["champion"]["roc_auc"], r["challenger_metrics"]["roc_auc"], diff(d, "roc_auc"), ci, diff(d, "brier"),
                     r["champion"]["ece"], r["challenger_metrics"]["ece"], diff(d, "ece"),
                     "yes" if r["promote"] else "no", r["reason"]])
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows) + "</table>")


def write_shadow_report(result: dict[str, Any], pairs: dict[str, pd.DataFrame], out_dir: str | Path,
                        title: str = "Shadow comparison") -> Path:
    """Write ``index.html``, ``shadow.json`` and one PNG per challenger into ``out_dir``; returns the HTML path."""
    import json
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "shadow.json").write_text(json.dumps(result, indent=2, default=float))
    imgs = [plot_shadow(v, rows, out / f"shadow-{v}.png") for v, rows in pairs.items()]
    rule = result["rule"]
    body = [f"<h1>{html.escape(title)}</h1>",
            "<p>Each challenger against the champion on the loans both scored at the same application, once their "
            "labels matured. Differences are challenger minus champion, with standard errors and 95% intervals from "
            f"a paired bootstrap over loans ({rule['bootstrap']} resamples). Rule: promote when the AUC gain is "
            f"above {rule['auc_se_k']:g} standard errors, the calibration error is at most "
            f"{rule['max_ece_increase']:g} worse, and at least {rule['min_defaults']} defaults matured.</p>",
            _shadow_table(result) if result["challengers"] else "<p>No challenger has paired rows with matured "
            "labels yet.</p>",
            f"<p>Winner: {html.escape(str(result['winner'] or 'none'))}</p>",
            *[f'<img src="{i}" alt="{i}">' for i in imgs]]
    return _write_page(out, title, body)
