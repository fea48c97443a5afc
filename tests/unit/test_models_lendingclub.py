"""Lending Club 2018 (one 3-month cohort, 111 defaults): the chosen model against logistic regression,
the lender's sub_grade and the no-skill Brier, on the same repeated stratified 5-fold splits (nested:
the whole search runs inside each outer training part)."""

from __future__ import annotations

import numpy as np
import pytest

from models.backtest import BacktestResult, backtest
from models.dataset import lending_club

# Default tier: a reduced search budget (the full one runs in the `full` tier below).
QUICK_BUDGET = {"logistic_regression": 6, "gradient_boosting": 1}  # LR: its default and whole L1 path


def _check(result: BacktestResult) -> None:
    print("\n" + result.text())
    vs_lr = result.paired("logistic_regression")
    vs_grade = result.paired("sub_grade")
    brier = result.metric("model", "brier")
    no_skill = result.metric("model", "no_skill_brier")
    prevalence_brier = result.metric("prevalence", "brier")
    print(f"chosen - LR ROC AUC {vs_lr['mean']:+.4f} (sd {vs_lr['std']:.4f}); chosen - sub_grade "
          f"{vs_grade['mean']:+.4f} (se {vs_grade['se']:.4f}); Brier {brier.mean():.6f} vs no-skill "
          f"{no_skill.mean():.6f} (constant training prevalence {prevalence_brier.mean():.6f})")
    assert result.rows == 10_000 and result.positives == 111
    assert len(brier) == result.settings["n_splits"] * result.settings["n_repeats"]
    # Within 0.01 of logistic regression's ROC AUC, or better, on the same folds.
    assert vs_lr["mean"] >= -0.01
    # The lender's sub_grade: with 111 defaults the two are tied within noise (see docs/MODELS.md);
    # what is checked is that the chosen model is not worse than it beyond two standard errors.
    assert vs_grade["mean"] >= -2 * vs_grade["se"]
    assert result.metric("model").mean() > 0.65
    # Calibrated: Brier below the no-skill Brier and below the constant-prevalence baseline.
    assert brier.mean() < no_skill.mean()
    assert brier.mean() < prevalence_brier.mean()
    assert np.isfinite(brier).all()


def test_lending_club_repeated_cv_chosen_model_vs_baselines() -> None:
    result = backtest(lending_club(), n_splits=5, n_repeats=2, inner_splits=3,
                      families=tuple(QUICK_BUDGET), budget=QUICK_BUDGET, seed=0, threshold=0.5)
    _check(result)


@pytest.mark.full
def test_lending_club_repeated_cv_full_search() -> None:
    result = backtest(lending_club(), n_splits=5, n_repeats=3, inner_splits=3, budget=6, seed=0, threshold=0.5)
    _check(result)


@pytest.mark.parametrize("family", ["logistic_regression", "random_forest", "gradient_boosting"])
def test_on_lending_club_rows_a_constrained_model_never_lowers_risk_as_a_constrained_feature_rises(family: str) -> None:
    """Each feature with a declared direction is moved up a grid of its own quantiles on real held-out loans
    (the check the metadata records, on the exported ONNX model's rows): the probability never falls."""
    from models.pipeline import train_candidate

    cand = train_candidate(lending_club(), [family], budget=1, n_repeats=1, monotonic=True)
    check = cand.metadata["monotonicity_check"]
    varied = {k: v for k, v in check["features"].items() if v["violating_share"] is not None}  # None: no grid
    print(f"\n{family}: {check['rows']} Lending Club rows, {len(varied)} of {len(check['features'])} constrained "
          "features vary: " + ", ".join(f"{k} {v['violating_share']:.0%}" for k, v in varied.items()))
    assert cand.metadata["monotonic"]["constrained"] and check["rows"] >= 100
    assert len(varied) >= 5, check["features"]
    assert all(v["violating_share"] == 0 for v in varied.values()), check["features"]
