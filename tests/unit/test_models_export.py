"""ONNX export: every family converts without ZipMap, named input/output, feature names embedded, parity."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from sklearn.linear_model import LogisticRegression

from contracts.features import FORMULA_FEATURE_NAMES
from contracts.registry_layout import ONNX_INPUT, ONNX_META_FEATURES, ONNX_PROBABILITIES
from models.dataset import from_applications
from models.errors import ParityError
from models.export import check_parity, export_onnx, onnx_proba, session
from models.split import plan
from models.synthetic import toy_applications
from models.train import DEFAULTS, FAMILIES, final_estimator, hist_gradient_boosting_converts


@pytest.fixture(scope="module")
def toy():
    ts = from_applications(toy_applications(1500, seed=11), "toy")
    sp = plan(ts, n_splits=3)
    return ts.subset(sp.dev), ts.subset(sp.holdout)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_exports_with_parity_on_the_holdout(toy, family: str) -> None:
    dev, hold = toy
    params = dict(DEFAULTS[family])
    if family == "random_forest":
        params["n_estimators"] = 60
    est = final_estimator(family, params).fit(dev.matrix().astype(np.float64), dev.label)
    model = export_onnx(est, dev.feature_names)
    record = check_parity(est, model, hold.matrix())
    print(f"{family}: parity max |p_sklearn - p_onnx| = {record['max_abs_diff']:.2e} on {record['rows']} rows")
    assert record["passed"] and record["max_abs_diff"] <= 1e-5
    proto = onnx.load_from_string(model)
    assert [i.name for i in proto.graph.input] == [ONNX_INPUT]
    assert ONNX_PROBABILITIES in [o.name for o in proto.graph.output]
    assert not any(n.op_type == "ZipMap" for n in proto.graph.node)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta[ONNX_META_FEATURES]) == FORMULA_FEATURE_NAMES
    out = session(model).run([ONNX_PROBABILITIES], {ONNX_INPUT: hold.matrix()[:7]})[0]
    assert out.shape == (7, 2) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_parity_check_refuses_a_model_that_scores_differently(toy) -> None:
    dev, hold = toy
    X = dev.matrix().astype(np.float64)
    a = LogisticRegression(max_iter=2000).fit(X, dev.label)
    b = LogisticRegression(max_iter=2000, C=1e-3).fit(X, dev.label)
    with pytest.raises(ParityError, match="not registered"):
        check_parity(a, export_onnx(b, dev.feature_names), hold.matrix())


def test_boosting_family_uses_an_estimator_that_converts() -> None:
    est = final_estimator("gradient_boosting", DEFAULTS["gradient_boosting"])
    name = type(est.steps[-1][1].estimator).__name__
    assert name == ("HistGradientBoostingClassifier" if hist_gradient_boosting_converts()
                    else "GradientBoostingClassifier")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(size=300) > 1).astype(int)
    fitted = final_estimator("gradient_boosting", {**DEFAULTS["gradient_boosting"], "n_estimators": 20}).fit(X, y)
    p = onnx_proba(session(export_onnx(fitted, ["a", "b", "c"])), X)
    assert np.abs(p - fitted.predict_proba(X.astype(np.float32).astype(np.float64))[:, 1]).max() <= 1e-5
