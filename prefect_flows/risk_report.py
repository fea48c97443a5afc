"""The daily risk report: HTML with PNG plots from score rows, outcomes and the registry's model metadata."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.drift import psi, psi_band
from models.report import new_figure, save_png


@dataclass
class ReportInputs:
    """What the report is drawn from: score rows, labelled application scores, metadata per version."""

    scores: pd.DataFrame  # trigger_kind, loan_id, trigger_time, probability, model_version
    labelled: pd.DataFrame  # loan_id, probability, model_version, defaulted (mature labels only)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # version -> metadata.json
    champion: str | None = None
    threshold: float = 0.5


def _fig() -> tuple[Any, Any]:
    """A report-sized figure (the model report's helper, wider)."""
    return new_figure((6.4, 3.8))


def daily(scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per day: scores, applications, mean probability and high-risk share."""
    s = scores.assign(day=pd.to_datetime(scores["trigger_time"], utc=True).dt.floor("D"))
    return s.groupby("day").agg(scores=("probability", "size"),
                                applications=("trigger_kind", lambda t: int((t == "application").sum())),
                                mean_probability=("probability", "mean"),
                                high_risk_share=("probability", lambda p: float((p >= threshold).mean()))).reset_index()


def calibration(labelled: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed default rate in equal-count probability bins."""
    if labelled.empty:
        return pd.DataFrame(columns=["mean_predicted", "observed", "loans"])
    q = min(bins, max(1, labelled["probability"].nunique()))
    b = pd.qcut(labelled["probability"].rank(method="first"), q, labels=False)
    return labelled.groupby(b).agg(mean_predicted=("probability", "mean"), observed=("defaulted", "mean"),
                                   loans=("loan_id", "size")).reset_index(drop=True)


def by_version(scores: pd.DataFrame, labelled: pd.DataFrame, metadata: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Per model version: scores, mean predicted, realised default rate (mature labels) and PSI vs training."""
    rows = []
    for version, grp in scores.groupby("model_version"):
        lab = labelled[labelled["model_version"] == version]
        ref = (metadata.get(str(version)) or {}).get("score_reference")
        value = psi(ref, grp["probability"].to_numpy(float)) if ref else float("nan")
        rows.append({"model_version": version, "scores": len(grp), "mean_predicted": float(grp["probability"].mean()),
                     "labelled_loans": len(lab),
                     "predicted_on_labelled": float(lab["probability"].mean()) if len(lab) else float("nan"),
                     "realised_default_rate": float(lab["defaulted"].mean()) if len(lab) else float("nan"),
                     "psi_vs_training": value, "drift": psi_band(value) if ref else "no training reference"})
    return pd.DataFrame(rows)


def render(inputs: ReportInputs, out_dir: Path, title: str) -> Path:
    """Write index.html and its PNG plots into ``out_dir``; returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    d = daily(inputs.scores, inputs.threshold)
    cal = calibration(inputs.labelled)
    ver = by_version(inputs.scores, inputs.labelled, inputs.metadata)
    plots: list[tuple[str, str]] = []

    fig, ax = _fig()
    ax.bar(d["day"].dt.strftime("%Y-%m-%d"), d["scores"], label="scores")
    ax.bar(d["day"].dt.strftime("%Y-%m-%d"), d["applications"], label="applications")
    ax.set(title="Volumes per day", ylabel="rows")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend()
    plots.append(("Volumes", save_png(fig, out_dir / "volumes.png")))

    fig, ax = _fig()
    ax.hist(inputs.scores["probability"], bins=40, range=(0, 1))
    ax.axvline(inputs.threshold, color="red", linestyle=":", label=f"alert threshold {inputs.threshold:g}")
    ax.set(title="Score distribution", xlabel="P(default)", ylabel="scores")
    ax.legend()
    plots.append(("Score distribution", save_png(fig, out_dir / "score_distribution.png")))

    fig, ax = _fig()
    ax.plot(d["day"], d["high_risk_share"], marker="o")
    ax.set(title=f"High-risk share (P >= {inputs.threshold:g}) per day", ylabel="share")
    fig.autofmt_xdate()
    plots.append(("High-risk share", save_png(fig, out_dir / "high_risk_share.png")))

    fig, ax = _fig()
    hi = float(max(cal["mean_predicted"].max() if len(cal) else 0, cal["observed"].max() if len(cal) else 0, 1e-3))
    ax.plot([0, hi * 1.05], [0, hi * 1.05], color="grey", linestyle=":")
    if len(cal):
        ax.plot(cal["mean_predicted"], cal["observed"], marker="o")
    ax.set(title=f"Calibration on {len(inputs.labelled)} loans with mature outcomes", xlabel="mean predicted",
           ylabel="observed default rate")
    plots.append(("Calibration", save_png(fig, out_dir / "calibration.png")))

    fig, ax = _fig()
    x = np.arange(len(ver))
    if len(ver):
        ax.bar(x - 0.2, ver["predicted_on_labelled"].fillna(0), 0.4, label="predicted")
        ax.bar(x + 0.2, ver["realised_default_rate"].fillna(0), 0.4, label="realised")
        ax.set_xticks(x, ver["model_version"])
    ax.set(title="Realised vs predicted default rate by model version", ylabel="rate")
    ax.legend()
    plots.append(("Realised vs predicted", save_png(fig, out_dir / "realised_vs_predicted.png")))

    fig, ax = _fig()
    if len(ver):
        ax.bar(ver["model_version"], ver["psi_vs_training"].fillna(0))
    for level in (0.1, 0.25):
        ax.axhline(level, color="grey", linestyle=":")
    ax.set(title="Score drift: PSI against the training distribution", ylabel="PSI")
    plots.append(("Score drift (PSI)", save_png(fig, out_dir / "psi.png")))

    meta = inputs.metadata.get(inputs.champion or "", {})
    model_rows = {"champion": inputs.champion or "none", "family": meta.get("family", "-"),
                  "created": meta.get("created_at", "-"),
                  "trained on": (meta.get("training_data") or {}).get("source", "-"),
                  "CV ROC AUC": (meta.get("metrics") or {}).get("cv", {}).get("roc_auc_mean", "-")}
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(inputs.scores)} scores, {int((inputs.scores['trigger_kind'] == 'application').sum())} applications, "
             f"{len(inputs.labelled)} loans with mature outcomes.</p>",
             "<h2>Model in use</h2><table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                                                      for k, v in model_rows.items()) + "</table>",
             "<h2>By model version</h2>" + ver.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")]
    parts += [f"<h2>{html.escape(name)}</h2><img src='{src}' alt='{html.escape(name)}'>" for name, src in plots]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
