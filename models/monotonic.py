"""Monotonic constraints from the features' declared directions, and the check every model report runs.

The directions are declared once, on the features (``contracts.features``, ``direction``). With
``monotonic`` on, the search trains each family so that no constrained feature can move the
probability against its direction:

- random forest and gradient boosting through scikit-learn's ``monotonic_cst`` (gradient boosting is
  then HistGradientBoosting: scikit-learn's GradientBoosting has no constraints);
- logistic regression through :class:`SignConstrainedLogisticRegression`, which drops a feature whose
  coefficient contradicts its direction and refits.

Calibration keeps the order of scores (Platt's sigmoid with the slope the data gives, isotonic
non-decreasing), so the calibrated model inherits the constraint. :func:`monotonicity_check` measures
it on any model, constrained or not, through the function the model is scored with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from contracts.features import risk_directions

# Above the float32 rounding of ONNX probabilities, far below a move anyone could act on.
TOLERANCE = 1e-6
CHECK_ROWS = 200
CHECK_POINTS = 21
CHECK_QUANTILES = (0.01, 0.99)
CHECK_COLUMNS = ["feature", "direction", "grid_points", "grid_from", "grid_to", "rows", "violating_rows",
                 "violating_share", "max_against"]


def constraints(names: list[str]) -> list[int] | None:
    """The declared direction of each feature in ``names``, or None when none of them has one."""
    directions = risk_directions(names)
    return directions if any(directions) else None


class SignConstrainedLogisticRegression(LogisticRegression):
    """A logistic regression whose coefficients never contradict ``monotonic_cst`` (+1, -1 or 0 per feature).

    Fit; while some constrained coefficient has the wrong sign, drop the feature with the largest such
    coefficient (in the scaled units it is fitted in) and refit on the rest. A wrong sign on a feature
    credit sense orders is almost always a collinear partner taking the other's share (loan and
    installment to income, say), so the partner keeps the effect once one is gone; this is the
    scorecard practice of removing counter-intuitive variables, done inside the fit so that each
    cross-validation fold decides for itself. A dropped feature keeps a coefficient of exactly 0: the
    model takes the full feature vector and converts to ONNX as a LogisticRegression. Binary labels.
    """

    coef_: np.ndarray
    dropped_: np.ndarray

    def __init__(self, *, C: float = 1.0, l1_ratio: float = 0.0, class_weight: Any = None, solver: str = "lbfgs",
                 max_iter: int = 100, tol: float = 1e-4, random_state: Any = None,
                 monotonic_cst: Sequence[int] | None = None) -> None:
        super().__init__(C=C, l1_ratio=l1_ratio, class_weight=class_weight, solver=solver, max_iter=max_iter,
                         tol=tol, random_state=random_state)
        self.monotonic_cst = monotonic_cst

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SignConstrainedLogisticRegression:
        """Fit with sign-contradicting constrained features dropped; ``dropped_`` holds their column indices."""
        X = np.asarray(X, dtype=np.float64)
        n = X.shape[1]
        signs = np.zeros(n) if self.monotonic_cst is None else np.asarray(self.monotonic_cst, dtype=np.float64)
        if signs.shape != (n,) or not np.isin(signs, (-1, 0, 1)).all():
            raise ValueError(f"monotonic_cst needs one of -1, 0, 1 per feature ({n}), got {self.monotonic_cst!r}")
        keep = np.ones(n, dtype=bool)
        while True:
            coef = np.zeros(n)
            if keep.any():
                super().fit(X[:, keep], y, sample_weight)
                if self.coef_.shape[0] != 1:
                    raise ValueError("SignConstrainedLogisticRegression supports binary labels only")
                coef[keep] = self.coef_[0]
            else:  # every feature contradicted its sign: the intercept alone, at the (weighted) default rate
                super().fit(np.zeros((len(X), 1)), y, sample_weight)
            wrong = signs * coef < 0
            if not wrong.any():
                break
            keep[int(np.argmax(np.where(wrong, np.abs(coef), -np.inf)))] = False
        self.coef_ = coef.reshape(1, n)
        self.n_features_in_ = n
        self.dropped_ = np.flatnonzero(~keep)
        return self


def dropped_features(estimator: Any, names: list[str]) -> list[str]:
    """Features a fitted (calibrated, possibly pipelined) sign-constrained logistic regression dropped."""
    last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    bases = [c.estimator for c in getattr(last, "calibrated_classifiers_", [])] or [last]
    dropped = sorted({int(i) for base in bases for i in getattr(base, "dropped_", [])})
    return [names[i] for i in dropped]


def monotonicity_check(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, names: list[str],
                       directions: Sequence[int], rows: int = CHECK_ROWS, points: int = CHECK_POINTS,
                       quantiles: tuple[float, float] = CHECK_QUANTILES, tolerance: float = TOLERANCE,
                       seed: int = 0) -> pd.DataFrame:
    """One row per feature with a direction: how many real rows the model scores against it.

    Up to ``rows`` rows of ``X`` are drawn; for each feature with a direction every drawn row is scored
    with that feature set to each point of a grid (``points`` quantiles of the feature in ``X`` between
    ``quantiles``, duplicates merged), the other features as they are. A row violates when somewhere on
    the grid the probability is further than ``tolerance`` against the direction from its value at a
    lower grid point (the largest such gap is ``max_against``). A feature constant on ``X`` has no
    grid and no verdict (NaN share).
    """
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(seed)
    sample = X[np.sort(rng.choice(len(X), size=rows, replace=False))] if len(X) > rows else X
    out: list[dict[str, Any]] = []
    for j, (name, direction) in enumerate(zip(names, directions, strict=True)):
        if not direction:
            continue
        present = X[:, j][~np.isnan(X[:, j])]  # a missing value (an attribute a row lacks) is no grid point
        grid = np.unique(np.quantile(present, np.linspace(*quantiles, points))) if len(present) else np.zeros(0)
        row: dict[str, Any] = {"feature": name, "direction": int(direction), "grid_points": len(grid),
                               "grid_from": float(grid[0]) if len(grid) else float("nan"),
                               "grid_to": float(grid[-1]) if len(grid) else float("nan"), "rows": len(sample)}
        if len(grid) < 2 or not len(sample):
            out.append({**row, "violating_rows": 0, "violating_share": float("nan"), "max_against": float("nan")})
            continue
        batch = np.repeat(sample, len(grid), axis=0)
        batch[:, j] = np.tile(grid, len(sample))
        signed = direction * np.asarray(predict(batch), dtype=np.float64).reshape(len(sample), len(grid))
        against = (np.maximum.accumulate(signed, axis=1) - signed).max(axis=1)
        violating = against > tolerance
        out.append({**row, "violating_rows": int(violating.sum()), "violating_share": float(violating.mean()),
                    "max_against": float(against.max())})
    return pd.DataFrame(out, columns=CHECK_COLUMNS)


def check_record(table: pd.DataFrame, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """The check as metadata: the grid's settings and, per feature, its direction, violating share and largest gap."""
    def number(v: Any) -> float | None:
        return None if pd.isna(v) else float(v)

    return {"rows": int(table["rows"].max()) if len(table) else 0, "points": CHECK_POINTS,
            "quantiles": list(CHECK_QUANTILES), "tolerance": tolerance,
            "features": {r.feature: {"direction": int(r.direction), "violating_share": number(r.violating_share),
                                     "max_against": number(r.max_against)} for r in table.itertuples()}}


def worst(record: dict[str, Any]) -> tuple[str, float, float] | None:
    """(feature, violating share, largest gap) of the worst feature in a :func:`check_record`: largest share,
    then largest gap; None when no feature had a grid."""
    checked = {k: v for k, v in record.get("features", {}).items() if v["violating_share"] is not None}
    if not checked:
        return None
    name = max(checked, key=lambda k: (checked[k]["violating_share"], checked[k]["max_against"]))
    return name, checked[name]["violating_share"], checked[name]["max_against"]
