"""Monotonic constraints: the declared directions, constrained training of every family, the check, ONNX parity, CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import models.train
from contracts.features import FEATURE_NAMES, FORMULA_FEATURE_NAMES, RISK_DIRECTIONS, Feature, risk_directions
from models.dataset import LABEL, TrainingSet, from_applications
from models.export import check_parity, export_onnx, onnx_proba, session
from models.monotonic import (
    SignConstrainedLogisticRegression, constraints, dropped_features, monotonicity_check,
)
from models.split import plan
from models.synthetic import toy_applications
from models.train import DEFAULTS, FAMILIES, final_estimator
from riskctl.commands.model import model as model_cli

# Small configurations: the property under test does not depend on the size of the ensemble.
SMALL = {**DEFAULTS, "random_forest": {**DEFAULTS["random_forest"], "n_estimators": 60},
         "gradient_boosting": {**DEFAULTS["gradient_boosting"], "n_estimators": 60}}


def against_credit_sense(n: int = 1500, seed: int = 5) -> pd.DataFrame:
    """Toy applications relabeled so that default odds fall as utilisation and loan-to-income rise,
    which their declared directions (+1) forbid: an unconstrained model learns it, a constrained one cannot."""
    apps = toy_applications(n, seed=seed)
    util = apps["revolving_balance_minor"] / apps["revolving_limit_minor"]
    dti = apps["monthly_debt_minor"] / (apps["annual_income_minor"] / 12)
    lti = apps["amount_minor"] / apps["annual_income_minor"]
    logit = -0.5 + 4 * dti - 5 * util - 3 * lti
    apps[LABEL] = (np.random.default_rng(seed).random(n) < 1 / (1 + np.exp(-logit))).astype("int8")
    return apps


@pytest.fixture(scope="module")
def split() -> tuple[TrainingSet, TrainingSet]:
    ts = from_applications(against_credit_sense(), "toy against credit sense")
    sp = plan(ts, n_splits=3)
    return ts.subset(sp.dev), ts.subset(sp.holdout)


_fitted: dict[tuple[str, bool], Any] = {}


def fitted(dev: TrainingSet, family: str, constrained: bool) -> Any:
    """The family's registered form (calibrated), fitted on ``dev`` with or without the declared constraints."""
    key = (family, constrained)
    if key not in _fitted:
        cst = constraints(dev.feature_names) if constrained else None
        _fitted[key] = final_estimator(family, SMALL[family], monotonic_cst=cst).fit(
            dev.matrix().astype(np.float64), dev.label)
    return _fitted[key]


def onnx_check(estimator: Any, dev: TrainingSet, rows: TrainingSet) -> pd.DataFrame:
    """The report's check of ``estimator``'s ONNX export on ``rows``, indexed by feature."""
    sess = session(export_onnx(estimator, dev.feature_names))
    table = monotonicity_check(lambda X: onnx_proba(sess, X), rows.matrix(), rows.feature_names,
                               risk_directions(rows.feature_names))
    return table.set_index("feature")


# The declaration


def test_directions_are_declared_on_contract_features_with_the_signs_credit_sense_demands() -> None:
    assert set(RISK_DIRECTIONS) <= set(FEATURE_NAMES)
    assert set(RISK_DIRECTIONS.values()) <= {-1, 1}
    for name in ("credit_utilization", "debt_to_income", "loan_to_value", "delinquencies_2y", "dpd_current",
                 "dpd_max", "late_payments", "missed_payments"):
        assert RISK_DIRECTIONS[name] == 1, name
    assert RISK_DIRECTIONS["income_stability"] == -1
    for name in ("interest_rate", "term_months", "is_secured", "behaviour_windows"):
        assert name not in RISK_DIRECTIONS, name
    assert risk_directions(["income_stability", "term_months", "credit_utilization"]) == [-1, 0, 1]


def test_directions_refuse_unknown_features_and_signs() -> None:
    with pytest.raises(ValueError, match="not contract features: bureau_score"):
        risk_directions(["credit_utilization", "bureau_score"])
    with pytest.raises(ValueError, match="direction must be -1, 0 or 1"):
        Feature("x", "x", direction=2)


# The check, on functions whose answer is known


def test_the_check_passes_a_monotone_model_and_fails_a_non_monotone_one() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(500, 2))
    names = ["credit_utilization", "income_stability"]

    def monotone(Z: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(2 * Z[:, 0] - Z[:, 1])))

    def wavy(Z: np.ndarray) -> np.ndarray:
        return 0.5 + 0.2 * np.sin(8 * Z[:, 0]) - 0.1 * Z[:, 1]

    ok = monotonicity_check(monotone, X, names, [1, -1]).set_index("feature")
    assert ok["violating_rows"].tolist() == [0, 0] and ok["rows"].tolist() == [200, 200]
    bad = monotonicity_check(wavy, X, names, [1, -1]).set_index("feature")
    assert bad.loc["credit_utilization", "violating_share"] == 1.0
    assert bad.loc["credit_utilization", "max_against"] > 0.3
    assert bad.loc["income_stability", "violating_rows"] == 0
    flipped = monotonicity_check(monotone, X, names, [-1, 1]).set_index("feature")
    assert flipped["violating_share"].tolist() == [1.0, 1.0]


def test_the_check_ignores_moves_within_the_tolerance_and_features_without_a_grid() -> None:
    X = np.column_stack([np.linspace(0, 1, 300), np.zeros(300)])
    tiny = monotonicity_check(lambda Z: 0.3 - 1e-7 * Z[:, 0], X, ["debt_to_income", "loan_to_value"], [1, 1])
    assert tiny.set_index("feature").loc["debt_to_income", "violating_rows"] == 0
    constant = tiny.set_index("feature").loc["loan_to_value"]
    assert constant["grid_points"] == 1 and np.isnan(constant["violating_share"])
    free = monotonicity_check(lambda Z: Z[:, 0], X, ["term_months", "interest_rate"], [0, 0])
    assert free.empty


# Constrained training, checked through the ONNX export as the report checks it


@pytest.mark.parametrize("family", FAMILIES)
def test_unconstrained_models_learn_the_forbidden_direction_and_the_check_finds_it(split, family: str) -> None:
    dev, hold = split
    table = onnx_check(fitted(dev, family, constrained=False), dev, hold)
    assert table.loc["credit_utilization", "violating_share"] > 0.5, table


@pytest.mark.parametrize("family", FAMILIES)
def test_constrained_models_never_move_against_a_declared_direction(split, family: str) -> None:
    dev, hold = split
    table = onnx_check(fitted(dev, family, constrained=True), dev, hold)
    checked = table.dropna(subset=["violating_share"])
    assert {"credit_utilization", "debt_to_income", "loan_to_income"} <= set(checked.index)
    assert checked["violating_rows"].sum() == 0, table


@pytest.mark.parametrize("family", FAMILIES)
def test_constrained_models_export_with_parity(split, family: str) -> None:
    dev, hold = split
    est = fitted(dev, family, constrained=True)
    record = check_parity(est, export_onnx(est, dev.feature_names), hold.matrix())
    print(f"{family} constrained: parity max |p_sklearn - p_onnx| = {record['max_abs_diff']:.2e}")
    assert record["passed"] and record["max_abs_diff"] <= 1e-5


def test_constrained_boosting_is_hist_gradient_boosting_and_keeps_parity_with_isotonic_calibration(split) -> None:
    dev, hold = split
    cst = constraints(dev.feature_names)
    est = final_estimator("gradient_boosting", SMALL["gradient_boosting"], calibration="isotonic",
                          monotonic_cst=cst).fit(dev.matrix().astype(np.float64), dev.label)
    base = est.steps[-1][1].calibrated_classifiers_[0].estimator  # behind the mean imputer
    assert isinstance(base, HistGradientBoostingClassifier) and list(base.monotonic_cst) == cst
    assert check_parity(est, export_onnx(est, dev.feature_names), hold.matrix())["passed"]


def test_sign_constrained_logistic_regression_drops_the_features_whose_sign_contradicts(split) -> None:
    dev, _ = split
    X = (dev.matrix().astype(np.float64) - dev.matrix().mean(axis=0)) / (dev.matrix().std(axis=0) + 1e-12)
    free = LogisticRegression(max_iter=5000).fit(X, dev.label)
    cst = constraints(dev.feature_names)
    assert cst is not None
    i_util = dev.feature_names.index("credit_utilization")
    assert free.coef_[0, i_util] < 0  # what the relabeled data teaches
    model = SignConstrainedLogisticRegression(max_iter=5000, monotonic_cst=cst).fit(X, dev.label)
    assert "credit_utilization" in [dev.feature_names[i] for i in model.dropped_]
    assert model.coef_[0, i_util] == 0.0 and model.coef_.shape == (1, len(cst))
    assert np.all(np.asarray(cst) * model.coef_[0] >= 0)
    assert "credit_utilization" in dropped_features(fitted(dev, "logistic_regression", True), dev.feature_names)


def test_boosting_with_a_split_between_two_neighbouring_float32_values_keeps_parity() -> None:
    # The split sits halfway between a and b; rounded to the nearest float32 it would be b itself,
    # and b would go the wrong way. The export uses the largest float32 not above the threshold.
    a, b = np.float32(1 + 2.0 ** -23), np.float32(1 + 2.0 ** -22)
    X = np.repeat([[a], [b]], 100, axis=0).astype(np.float64)
    y = np.repeat([0, 1], 100)
    hgb = HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=10, early_stopping=False).fit(X, y)
    threshold = hgb._predictors[0][0].nodes["num_threshold"][0]
    assert np.float32(threshold) == b and threshold < b  # the premise: nearest-float32 rounding would flip b
    record = check_parity(hgb, export_onnx(hgb, ["credit_utilization"]), X)
    assert record["passed"] and record["max_abs_diff"] <= 1e-6


# The command line


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("monotonic") / "apps.csv"
    against_credit_sense(1500, seed=41).to_csv(path, index=False)
    return path


def flat(output: str) -> str:
    """CLI output with the console's line wrapping undone."""
    return " ".join(output.split())


def test_the_monotonic_option_reaches_the_search(monkeypatch: pytest.MonkeyPatch, data: Path) -> None:
    seen: list[Any] = []
    search = models.train.search

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[6] if len(args) > 6 else kwargs.get("monotonic_cst"))
        return search(*args, **kwargs)

    monkeypatch.setattr(models.train, "search", spy)
    base = ["train", "--file", str(data), "--families", "logistic_regression", "--budget", "1", "--no-register"]
    on = CliRunner().invoke(model_cli, [*base, "--monotonic"])
    off = CliRunner().invoke(model_cli, [*base, "--no-monotonic"])
    assert on.exit_code == 0 and off.exit_code == 0, on.output + off.output
    assert seen == [risk_directions(FORMULA_FEATURE_NAMES), None]
    on_text, off_text = flat(on.output), flat(off.output)
    assert "monotonicity: constrained (dropped: " in on_text and "credit_utilization" in on_text
    assert "moves against a declared direction" in on_text
    assert "monotonicity: unconstrained; worst " in off_text and "against its direction, by up to" in off_text


def test_the_report_checks_monotonicity_for_constrained_and_unconstrained_versions(tmp_path: Path, data: Path) -> None:
    reg = str(tmp_path / "registry")
    for flag in ("--monotonic", "--no-monotonic"):
        result = CliRunner().invoke(model_cli, ["train", "--file", str(data), "--registry", reg, "--families",
                                                "logistic_regression", "--budget", "1", flag])
        assert result.exit_code == 0, result.output
    pages, shares = {}, {}
    for version in ("v0001", "v0002"):
        report = tmp_path / version
        result = CliRunner().invoke(model_cli, ["evaluate", "--file", str(data), "--registry", reg, "--version",
                                                version, "--report", str(report)])
        assert result.exit_code == 0, result.output
        found = re.findall(r"monotonicity (\w+) [+-]1: ([\d.]+)% of", flat(result.output))
        shares[version] = {name: float(share) for name, share in found}
        pages[version] = (report / "index.html").read_text()
    constrained, unconstrained = pages["v0001"], pages["v0002"]
    assert "<h2>Monotonicity</h2>" in constrained and "trained with monotonic constraints" in constrained
    assert "<h2>Monotonicity</h2>" in unconstrained and "trained without monotonic constraints" in unconstrained
    assert "violating_share" in constrained and "credit_utilization" in constrained
    assert "credit_utilization" in shares["v0001"] and set(shares["v0001"].values()) == {0.0}
    assert shares["v0002"]["credit_utilization"] > 50
