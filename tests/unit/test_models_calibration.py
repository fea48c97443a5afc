"""Calibration: ECE and its bins, the reliability diagram, and isotonic calibration exported with ONNX parity."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from contracts.features import feature_schema_hash
from contracts.registry_layout import ONNX_INPUT, ONNX_PROBABILITIES
from models.dataset import TrainingSet, from_applications
from models.errors import ModelError
from models.evaluate import binary_metrics, calibration_table, expected_calibration_error
from models.export import check_parity, export_onnx, onnx_proba, parity, session
from models.onnx_isotonic import isotonic_model
from models.pipeline import Evaluation, train_candidate
from models.report import plot_reliability, reliability_figure, write_report
from models.split import plan
from models.synthetic import toy_applications
from models.train import CALIBRATION, DEFAULTS, FAMILIES, final_estimator
from udfs.scorer import open_model


def hand_example() -> tuple[np.ndarray, np.ndarray]:
    """Eight loans in two bins: scores 0.1 0.1 0.2 0.4 | 0.5 0.7 0.8 1.0, defaults 0 0 0 1 | 1 1 1 1."""
    return np.array([0, 0, 0, 1, 1, 1, 1, 1]), np.array([0.1, 0.1, 0.2, 0.4, 0.5, 0.7, 0.8, 1.0])


def scores_and_outcomes(n: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores on [0, 0.3] and outcomes drawn with exactly those probabilities: calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.3, n)
    return (rng.random(n) < p).astype(int), p


def test_ece_matches_the_hand_computed_example() -> None:
    y, p = hand_example()
    table = calibration_table(y, p, bins=2)
    assert table["n"].tolist() == [4, 4]
    assert table["mean_predicted"].tolist() == pytest.approx([0.2, 0.75])
    assert table["observed"].tolist() == pytest.approx([0.25, 1.0])
    # 4/8 * |0.25 - 0.2| + 4/8 * |1.0 - 0.75| = 0.025 + 0.125
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.15)


def test_tied_scores_share_a_bin_so_a_calibrated_constant_has_no_gap() -> None:
    y = np.array([1] * 20 + [0] * 80)
    p = np.full(100, 0.2)
    assert len(calibration_table(y, p)) == 1
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_a_calibrated_score_has_ece_near_zero_and_a_miscalibrated_one_does_not() -> None:
    y, p = scores_and_outcomes()
    calibrated = expected_calibration_error(y, p)
    overconfident = expected_calibration_error(y, np.minimum(2 * p, 1))
    assert calibrated < 0.01
    assert overconfident > 0.05 and overconfident > 10 * calibrated


def test_binary_metrics_carry_ece_beside_brier() -> None:
    y, p = hand_example()
    m = binary_metrics(y, p)
    assert m["ece"] == pytest.approx(expected_calibration_error(y, p))
    assert "brier" in m


def test_reliability_diagram_draws_every_bin_on_unit_axes_with_its_count() -> None:
    y, p = scores_and_outcomes(5000)
    table = calibration_table(y, p)
    fig = reliability_figure(table, expected_calibration_error(y, p))
    full, zoom, counts = fig.axes
    assert full.get_xlim() == (0, 1) and full.get_ylim() == (0, 1)
    assert table["mean_predicted"].max() < zoom.get_xlim()[1] < 1
    for ax in (full, zoom):
        assert ax.get_xlabel() and ax.get_ylabel()
        diagonal, model = ax.get_lines()
        assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [0, ax.get_xlim()[1]]
        assert list(model.get_xdata()) == pytest.approx(table["mean_predicted"].tolist())
        assert list(model.get_ydata()) == pytest.approx(table["observed"].tolist())
    assert [t.get_text() for t in zoom.texts] == [str(b) for b in range(1, 11)]
    assert [b.get_height() for b in counts.patches] == table["n"].tolist()
    assert [t.get_text() for t in counts.texts] == [str(n) for n in table["n"]]
    assert counts.get_xlabel() and counts.get_ylabel() and "ECE" in fig.texts[0].get_text()
    assert len(table) == 10 and table["n"].sum() == 5000


def test_reliability_diagram_file_is_a_png(tmp_path) -> None:
    y, p = scores_and_outcomes(2000)
    name = plot_reliability(calibration_table(y, p), expected_calibration_error(y, p), tmp_path / "reliability.png")
    data = (tmp_path / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_the_report_has_the_reliability_diagram_ece_and_the_method_comparison(tmp_path) -> None:
    y, p = scores_and_outcomes(2000)
    rows = TrainingSet(features=pd.DataFrame({"a": p}), label=y, source="synthetic")
    comparison = {m: {"trained_on": 10, "n": 2000, "positives": int(y.sum()), "roc_auc": 0.6, "brier": 0.1,
                      "ece": 0.01, "log_loss": 0.3, "parity_max_abs_diff": 1e-8} for m in ("sigmoid", "isotonic")}
    ev = Evaluation(version="v0001", rows=rows, model_p=p, baselines={}, metrics={"model": binary_metrics(y, p)},
                    calibration=calibration_table(y, p), lift=pd.DataFrame(),
                    importance=pd.DataFrame({"feature": ["a"], "auc_drop_mean": [0.1], "auc_drop_std": [0.0]}),
                    calibration_comparison=comparison)
    page = write_report(ev, tmp_path, "t").read_text()
    assert (tmp_path / "reliability.png").exists() and 'src="reliability.png"' in page
    assert "ece (10 equal-count bins)" in page and "Calibration methods on the same rows" in page
    assert page.count("<td>isotonic</td>") == 1 and page.count("<td>sigmoid</td>") == 1


# --- isotonic calibration in ONNX ---------------------------------------------------------------------------

def fitted_isotonic(seed: int = 0, n: int = 400) -> IsotonicRegression:
    """An isotonic calibrator with many thresholds, fitted on scores that repeat (ties in x)."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=n), 2)
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(float)
    return IsotonicRegression(out_of_bounds="clip").fit(x, y)


def onnx_isotonic(calibrator: IsotonicRegression, x: np.ndarray) -> np.ndarray:
    """The calibrator's ONNX graph run by onnxruntime on scores ``x``."""
    sess = ort.InferenceSession(isotonic_model(calibrator), providers=["CPUExecutionProvider"])
    return sess.run(["p"], {"score": np.asarray(x, dtype=np.float64).reshape(-1, 1)})[0][:, 0]


def edge_scores(calibrator: IsotonicRegression, seed: int = 1) -> np.ndarray:
    """Random scores, every threshold exactly, midpoints and near-misses, and scores far outside the fit."""
    t = calibrator.X_thresholds_
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(t[0] - 1, t[-1] + 1, 2000), t, (t[1:] + t[:-1]) / 2,
                           np.nextafter(t, -np.inf), np.nextafter(t, np.inf),
                           [t[0] - 1e6, t[-1] + 1e6, t[0], t[-1]]])


def test_the_isotonic_graph_interpolates_as_scikit_learn_does() -> None:
    cal = fitted_isotonic()
    assert len(cal.X_thresholds_) > 20
    x = edge_scores(cal)
    diff = np.abs(onnx_isotonic(cal, x) - cal.predict(x))
    assert diff.max() <= 1e-12, f"max |diff| {diff.max():.2e}"


@pytest.mark.parametrize("points", [1, 2])
def test_the_isotonic_graph_handles_one_and_two_thresholds(points: int) -> None:
    x = np.array([0.0, 1.0]) if points == 2 else np.array([0.0, 0.0])
    cal = IsotonicRegression(out_of_bounds="clip").fit(x, np.array([0.0, 1.0]) if points == 2 else [0.3, 0.3])
    assert len(cal.X_thresholds_) == points
    scores = np.array([-5.0, 0.0, 0.25, 0.5, 1.0, 7.0])
    assert np.abs(onnx_isotonic(cal, scores) - cal.predict(scores)).max() <= 1e-12


@pytest.fixture(scope="module")
def toy():
    ts = from_applications(toy_applications(1500, seed=11), "toy")
    sp = plan(ts, n_splits=3)
    return ts.subset(sp.dev), ts.subset(sp.holdout)


def outside_the_fit(rows: np.ndarray) -> np.ndarray:
    """The rows pushed far beyond every feature's training range, in both directions."""
    return np.concatenate([rows * 50, -rows * 50, rows + 1e3]).astype(np.float32)


@pytest.mark.parametrize("family", FAMILIES)
def test_isotonic_models_export_with_parity_and_keep_the_scoring_contract(toy, family: str) -> None:
    dev, hold = toy
    params = {**DEFAULTS[family], **({"n_estimators": 60} if family == "random_forest" else {})}
    est = final_estimator(family, params, calibration="isotonic").fit(dev.matrix().astype(np.float64), dev.label)
    model = export_onnx(est, dev.feature_names)
    record = check_parity(est, model, hold.matrix())
    extreme = parity(est, model, outside_the_fit(hold.matrix()))
    print(f"{family} isotonic: parity {record['max_abs_diff']:.2e} on the holdout, {extreme:.2e} outside the fit")
    assert record["passed"] and extreme <= 1e-5
    if family == "logistic_regression":  # no float-only tree op on the way: the graph runs in double throughout
        assert record["max_abs_diff"] <= 1e-6 and extreme <= 1e-6
    proto = onnx.load_from_string(model)
    assert not any(n.op_type == "ArgMin" for n in proto.graph.node)  # skl2onnx's nearest-threshold lookup
    sess = session(model)
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape[1]) == (ONNX_INPUT, "tensor(float)", len(dev.feature_names))
    out = {o.name: o for o in sess.get_outputs()}[ONNX_PROBABILITIES]
    assert out.type == "tensor(float)"
    probabilities = sess.run([ONNX_PROBABILITIES], {ONNX_INPUT: hold.matrix()[:5]})[0]
    assert probabilities.shape == (5, 2) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-6)
    meta = {"feature_names": dev.feature_names, "feature_schema_hash": feature_schema_hash(dev.feature_names),
            "feature_reference": {n: float(dev.features[n].mean()) for n in dev.feature_names}}
    loaded = open_model("v0001", model, meta, dev.feature_names)
    assert np.array_equal(loaded.predict(hold.matrix()), onnx_proba(sess, hold.matrix()))


def test_sigmoid_is_the_default_and_an_unknown_calibration_is_refused() -> None:
    assert CALIBRATION == "sigmoid"
    assert final_estimator("logistic_regression", DEFAULTS["logistic_regression"]).steps[-1][1].method == "sigmoid"
    with pytest.raises(ModelError, match="isotonic"):
        final_estimator("logistic_regression", DEFAULTS["logistic_regression"], calibration="beta")


def test_a_candidate_can_be_isotonic_and_compare_both_methods_on_the_holdout() -> None:
    ts = from_applications(toy_applications(1500, seed=11), "toy")
    cand = train_candidate(ts, ["logistic_regression"], budget=1, n_splits=3, threshold=0.5,
                           calibration="isotonic", compare_calibration=True)
    assert cand.metadata["calibration"] == "isotonic" and cand.metadata["parity"]["passed"]
    assert cand.holdout is not None
    comparison = cand.metadata["calibration_comparison"]
    assert set(comparison) == {"sigmoid", "isotonic"}
    assert {c["n"] for c in comparison.values()} == {cand.holdout.n}
    for c in comparison.values():
        assert 0 <= c["ece"] < 1 and 0 < c["brier"] < 1 and c["parity_max_abs_diff"] <= 1e-5
    assert comparison["isotonic"]["brier"] == pytest.approx(cand.metadata["metrics"]["holdout"]["model"]["brier"])
