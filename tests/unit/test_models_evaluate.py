"""Metrics, baselines, paired differences and permutation importance on data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluate import (
    binary_metrics, calibration_table, confusion_at, ks_statistic, lift_by_decile, paired_difference,
    permutation_importance,
)


def test_ks_and_auc_of_perfect_and_useless_scores() -> None:
    y = np.array([0] * 90 + [1] * 10)
    perfect = np.r_[np.linspace(0, 0.4, 90), np.linspace(0.6, 1, 10)]
    assert ks_statistic(y, perfect) == pytest.approx(1.0)
    m = binary_metrics(y, np.full(100, 0.1))
    assert m["roc_auc"] == 0.5 and m["ks"] == 0.0
    assert m["brier"] == pytest.approx(m["no_skill_brier"]) == pytest.approx(0.09)


def test_confusion_at_threshold() -> None:
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.6, 0.1, 0.5])
    c = confusion_at(y, p, 0.5)
    assert (c["tp"], c["fn"], c["fp"], c["tn"]) == (1, 1, 2, 1)
    assert c["precision"] == pytest.approx(1 / 3) and c["recall"] == 0.5


def test_lift_and_calibration_tables() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.3, 5000)
    y = (rng.random(5000) < p).astype(int)
    lift = lift_by_decile(y, p)
    assert list(lift["decile"]) == list(range(1, 11))
    assert lift["lift"].iloc[0] > 1.5 > lift["lift"].iloc[-1]
    assert lift["cumulative_capture"].iloc[-1] == pytest.approx(1.0)
    cal = calibration_table(y, p)
    assert np.abs(cal["mean_predicted"] - cal["observed"]).max() < 0.05  # calibrated by construction


def test_paired_difference() -> None:
    d = paired_difference([0.7, 0.8, 0.75], [0.69, 0.78, 0.76])
    assert d["mean"] == pytest.approx(0.0066667, abs=1e-6) and d["n"] == 3
    assert d["share_better"] == pytest.approx(2 / 3) and d["min"] == pytest.approx(-0.01)


def test_permutation_importance_ranks_the_informative_feature_first() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 3)).astype(np.float32)
    y = (X[:, 1] + 0.3 * rng.normal(size=2000) > 0.5).astype(int)
    imp = permutation_importance(lambda A: 1 / (1 + np.exp(-3 * A[:, 1])), X, y, ["a", "b", "c"], n_repeats=2)
    assert imp["feature"].iloc[0] == "b" and imp["auc_drop_mean"].iloc[0] > 0.2
    assert imp.set_index("feature").loc[["a", "c"], "auc_drop_mean"].abs().max() < 1e-9
