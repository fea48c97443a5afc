"""Backtest: nested cross-validation of the whole training procedure against the baselines, fold by fold.

Outer loop: repeated stratified K-fold. In each outer training part the full procedure runs (search
over families on inner stratified folds, calibrated final fit), so "the chosen model" is whatever the
procedure picks there; it and every baseline are scored on the same outer test fold, and differences
are paired by fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.dataset import TrainingSet
from models.evaluate import baseline_probabilities, binary_metrics, paired_difference, summarize_folds
from models.split import cv_folds
from models.train import FAMILIES, fit

METRICS = ("roc_auc", "pr_auc", "brier", "ks", "log_loss")


@dataclass
class BacktestResult:
    """Per-fold metrics of the chosen model and baselines, what was chosen, and paired differences."""

    source: str
    rows: int
    positives: int
    per_fold: pd.DataFrame
    chosen: list[dict[str, Any]]
    settings: dict[str, Any]

    def metric(self, model: str, metric: str = "roc_auc") -> np.ndarray:
        """``metric`` of ``model`` per fold, in fold order."""
        f = self.per_fold[self.per_fold["model"] == model].sort_values("fold")
        return f[metric].to_numpy(dtype=np.float64)

    def paired(self, other: str, metric: str = "roc_auc", model: str = "model") -> dict[str, float]:
        """Per-fold ``model`` minus ``other`` on ``metric``."""
        return paired_difference(self.metric(model, metric), self.metric(other, metric))

    @property
    def models(self) -> list[str]:
        """Model names present (the chosen "model" first)."""
        names = list(dict.fromkeys(self.per_fold["model"]))
        return sorted(names, key=lambda n: (n != "model", n))

    def summary(self) -> pd.DataFrame:
        """Mean and sd per model of every metric."""
        parts = {m: summarize_folds(self.per_fold, m)[["mean", "std"]].add_prefix(f"{m}_") for m in METRICS}
        return pd.concat(parts.values(), axis=1).loc[self.models]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able digest (for the CLI and docs)."""
        s = self.summary()
        out: dict[str, Any] = {"source": self.source, "rows": self.rows, "positives": self.positives,
                               "settings": self.settings,
                               "summary": {m: {k: float(v) for k, v in s.loc[m].items()} for m in s.index},
                               "chosen_families": pd.Series([c["family"] for c in self.chosen]).value_counts()
                               .to_dict(),
                               "no_skill_brier": float(self.per_fold["no_skill_brier"].mean())}
        out["paired_roc_auc"] = {other: self.paired(other) for other in self.models if other != "model"}
        out["paired_brier"] = {other: self.paired(other, "brier") for other in self.models if other != "model"}
        return out

    def text(self) -> str:
        """A plain-text report: summary table and paired differences."""
        lines = [f"backtest on {self.source}: {self.rows} loans, {self.positives} defaults, "
                 f"{self.settings['n_splits']}-fold x {self.settings['n_repeats']} (nested, inner "
                 f"{self.settings['inner_splits']}-fold, budget {self.settings['budget']}"
                 f"{', monotonic constraints' if self.settings.get('monotonic') else ''})",
                 f"{'model':22s} {'ROC AUC':>15s} {'PR AUC':>8s} {'Brier':>9s} {'KS':>6s}"]
        s = self.summary()
        for m in s.index:
            r = s.loc[m]
            lines.append(f"{m:22s} {r['roc_auc_mean']:.4f} ± {r['roc_auc_std']:.4f} {r['pr_auc_mean']:8.4f} "
                         f"{r['brier_mean']:9.6f} {r['ks_mean']:6.3f}")
        lines.append(f"no-skill Brier (test prevalence p(1-p)): {self.per_fold['no_skill_brier'].mean():.6f}")
        for other in self.models:
            if other == "model":
                continue
            d = self.paired(other)
            lines.append(f"paired ROC AUC, model - {other}: {d['mean']:+.4f} (sd {d['std']:.4f}, "
                         f"se {d['se']:.4f}, range {d['min']:+.4f}..{d['max']:+.4f}, "
                         f"better in {d['share_better']:.0%} of {d['n']} folds)")
        fams = pd.Series([c["family"] for c in self.chosen]).value_counts()
        lines.append("chosen per fold: " + ", ".join(f"{k} x{v}" for k, v in fams.items()))
        return "\n".join(lines)


def backtest(ts: TrainingSet, n_splits: int = 5, n_repeats: int = 2, inner_splits: int = 3,
             families: Sequence[str] = FAMILIES, budget: int | dict[str, int] = 4, seed: int = 0,
             threshold: float = 0.5, monotonic: bool = False) -> BacktestResult:
    """Nested CV of the training procedure on ``ts`` with the baselines on the same outer folds
    (``monotonic``: the procedure trains under the features' declared directions)."""
    rows: list[dict[str, Any]] = []
    chosen: list[dict[str, Any]] = []
    for i, (tr, te) in enumerate(cv_folds(ts.label, n_splits, n_repeats, seed)):
        train, test = ts.subset(tr), ts.subset(te)
        inner = cv_folds(train.label, inner_splits, 1, seed + 1000 + i)
        model = fit(train, inner, families, budget, seed, monotonic=monotonic)
        chosen.append({"fold": i, "family": model.family, "params": model.params,
                       "inner_auc": model.search.cv_auc_mean})
        probs = {"model": model.predict(test.matrix().astype(np.float64)), **baseline_probabilities(train, test)}
        for name, p in probs.items():
            m = binary_metrics(test.label, p, threshold)
            rows.append({"fold": i, "model": name, **{k: m[k] for k in METRICS},
                         "no_skill_brier": m["no_skill_brier"], "positives": m["positives"], "n": m["n"]})
    settings = {"n_splits": n_splits, "n_repeats": n_repeats, "inner_splits": inner_splits,
                "families": list(families), "budget": budget, "seed": seed, "monotonic": monotonic}
    return BacktestResult(source=ts.source, rows=ts.n, positives=ts.positives, per_fold=pd.DataFrame(rows),
                          chosen=chosen, settings=settings)
