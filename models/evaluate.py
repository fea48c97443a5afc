"""Metrics (ROC AUC, PR AUC, Brier, expected calibration error, KS, calibration, lift, confusion at the alert
threshold), baselines, paired fold differences and permutation importance.

Calibration is read in equal-count score bins (``CALIBRATION_BINS``, tied scores kept in one bin): with
about 1 % defaults nearly every score is below 0.1, so equal-width bins on [0, 1] would put almost every
loan in the first bin and ECE would only compare the mean score with the default rate.

Baselines, each fitted on the same training rows as the model it is compared with:
- ``prevalence``: every loan gets the training default rate (the no-skill Brier reference);
- ``sub_grade``: a logistic regression on the lender's sub_grade rank (A1=1 .. G5=35), where present;
- ``logistic_regression``: StandardScaler + LogisticRegression with default settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score, roc_curve

from models.dataset import TrainingSet
from models.train import logistic_baseline, positive_proba

Predict = Callable[[np.ndarray], np.ndarray]
BASELINES = ("prevalence", "sub_grade", "logistic_regression")
CALIBRATION_BINS = 10


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score distributions of defaulters and the rest."""
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def confusion_at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Confusion matrix, precision and recall when loans with p >= ``threshold`` are flagged."""
    flag = p >= threshold
    tp = int(np.sum(flag & (y == 1)))
    fp = int(np.sum(flag & (y == 0)))
    fn = int(np.sum(~flag & (y == 1)))
    tn = int(np.sum(~flag & (y == 0)))
    return {"threshold": threshold, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "flagged_share": float(flag.mean()) if len(flag) else float("nan")}


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """ROC AUC, PR AUC, Brier, log loss, KS, prevalence and the confusion matrix at ``threshold``."""
    y = np.asarray(y, dtype=np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    both = 0 < y.sum() < len(y)
    prev = float(y.mean()) if len(y) else float("nan")
    return {
        "n": int(len(y)), "positives": int(y.sum()), "prevalence": prev,
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "no_skill_brier": prev * (1 - prev),
        "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "ks": ks_statistic(y, p) if both else float("nan"),
        "mean_p": float(p.mean()),
        "confusion": confusion_at(y, p, threshold),
    }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Mean predicted vs observed default rate in up to ``bins`` equal-count score bins.

    Bin edges are the score's quantiles; a score equal to an edge goes to the bin above, so tied scores
    always share a bin (fewer bins when ties swallow edges) and a constant, calibrated score has no gap.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    columns = ["bin", "n", "min_predicted", "max_predicted", "mean_predicted", "observed", "gap"]
    if len(p) == 0:
        return pd.DataFrame(columns=columns)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]))
    frame = pd.DataFrame({"bin": np.searchsorted(edges, p, side="right"), "y": y, "p": p})
    out = frame.groupby("bin").agg(n=("y", "size"), min_predicted=("p", "min"), max_predicted=("p", "max"),
                                   mean_predicted=("p", "mean"), observed=("y", "mean")).reset_index(drop=True)
    out["gap"] = out["observed"] - out["mean_predicted"]
    out.insert(0, "bin", np.arange(1, len(out) + 1))
    return out[columns]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE: sum over the bins of :func:`calibration_table` of (bin share) x |observed - mean predicted|."""
    table = calibration_table(y, p, bins)
    if table.empty:
        return float("nan")
    return float(np.sum(table["n"] / table["n"].sum() * table["gap"].abs()))


def lift_by_decile(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Deciles by score (1 = riskiest): loans, defaults, default rate, lift and cumulative share of defaults."""
    frame = pd.DataFrame({"y": y, "p": p}).sort_values("p", ascending=False, kind="stable").reset_index(drop=True)
    frame["decile"] = np.arange(len(frame)) * 10 // max(len(frame), 1) + 1
    out = frame.groupby("decile").agg(loans=("y", "size"), defaults=("y", "sum"), default_rate=("y", "mean"),
                                      min_score=("p", "min"), max_score=("p", "max")).reset_index()
    base = frame["y"].mean()
    out["lift"] = out["default_rate"] / base if base > 0 else np.nan
    total = frame["y"].sum()
    out["cumulative_capture"] = out["defaults"].cumsum() / total if total > 0 else np.nan
    return out


def sub_grade_baseline(train: TrainingSet, test: TrainingSet) -> np.ndarray | None:
    """P(default) from the lender's sub_grade alone (None when either side lacks sub_grade)."""
    if train.sub_grade is None or test.sub_grade is None:
        return None
    ok = train.sub_grade.notna().to_numpy()
    if ok.sum() == 0 or len(np.unique(train.label[ok])) < 2:
        return None
    m = LogisticRegression().fit(train.sub_grade.to_numpy()[ok].reshape(-1, 1), train.label[ok])
    g = test.sub_grade.to_numpy(dtype=np.float64)
    p = np.full(test.n, float(train.label[ok].mean()))
    have = ~np.isnan(g)
    if have.any():
        p[have] = positive_proba(m, g[have].reshape(-1, 1))
    return p


def baseline_probabilities(train: TrainingSet, test: TrainingSet) -> dict[str, np.ndarray]:
    """Each available baseline's P(default) on ``test`` after fitting on ``train``."""
    out = {"prevalence": np.full(test.n, train.prevalence)}
    grade = sub_grade_baseline(train, test)
    if grade is not None:
        out["sub_grade"] = grade
    lr = logistic_baseline().fit(train.matrix().astype(np.float64), train.label)
    out["logistic_regression"] = positive_proba(lr, test.matrix().astype(np.float64))
    return out


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                      test_to_train: float | None = None) -> dict[str, float]:
    """Per-fold a - b: mean, standard deviation, standard error, range and share of folds where a > b.

    With ``test_to_train`` (a fold's test rows over its training rows, 1/(K-1) for K-fold) also the
    Nadeau-Bengio corrected standard error, ``se_corrected``: folds of repeated cross-validation share
    training rows, so their differences are correlated and the plain sd/sqrt(n) is too small.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    out = {"mean": float(d.mean()), "std": sd, "se": sd / np.sqrt(len(d)) if len(d) else float("nan"),
           "min": float(d.min()), "max": float(d.max()), "n": int(len(d)),
           "share_better": float((d > 0).mean())}
    if test_to_train is not None and len(d):
        out["se_corrected"] = float(np.sqrt((1 / len(d) + test_to_train) * sd ** 2))
    return out


def permutation_importance(predict: Predict, X: np.ndarray, y: np.ndarray, feature_names: Sequence[str],
                           n_repeats: int = 5, seed: int = 0) -> pd.DataFrame:
    """Mean and sd of the ROC AUC drop when each feature's column is shuffled, largest first."""
    rng = np.random.default_rng(seed)
    X = np.asarray(X, dtype=np.float32)
    base = roc_auc_score(y, predict(X))
    rows = []
    for j, name in enumerate(feature_names):
        drops = []
        for _ in range(n_repeats):
            Xp = X.copy()
            Xp[:, j] = Xp[rng.permutation(len(Xp)), j]
            drops.append(base - roc_auc_score(y, predict(Xp)))
        rows.append({"feature": name, "auc_drop_mean": float(np.mean(drops)), "auc_drop_std": float(np.std(drops))})
    return pd.DataFrame(rows).sort_values("auc_drop_mean", ascending=False, kind="stable").reset_index(drop=True)


def compare_on(test: TrainingSet, model_p: np.ndarray, baselines: dict[str, np.ndarray],
               threshold: float) -> dict[str, dict[str, Any]]:
    """Metrics of the model and every baseline on the same rows."""
    out = {"model": binary_metrics(test.label, model_p, threshold)}
    for name, p in baselines.items():
        out[name] = binary_metrics(test.label, p, threshold)
    return out


def summarize_folds(per_fold: pd.DataFrame, metric: str = "roc_auc") -> pd.DataFrame:
    """Mean and sd of ``metric`` per model over folds (``per_fold`` has columns fold, model, metric)."""
    g = per_fold.groupby("model")[metric]
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "folds": g.size()}).sort_values("mean",
                                                                                                   ascending=False)
