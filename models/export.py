"""ONNX export (skl2onnx, no ZipMap) and the parity check that must pass before a model is registered."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from contracts.registry_layout import ONNX_INPUT, ONNX_META_FEATURES, ONNX_PROBABILITIES
from contracts.features import feature_schema_hash
from models.errors import ModelError, ParityError
from models.onnx_boosting import convert_hist_gradient_boosting
from models.onnx_imputer import convert_mean_imputer
from models.onnx_isotonic import calibrates_isotonic, convert_calibrated_classifier, float_interface
# Parity, holdout metrics and batch scores come from the session and prediction the stream's workers run.
from udfs.scorer import onnx_session as session, predict_proba as onnx_proba

PARITY_TOLERANCE = 1e-5


def register_sign_constrained_logistic() -> None:
    """Convert SignConstrainedLogisticRegression as skl2onnx converts LogisticRegression (it is one, with
    some coefficients held at 0); the calibrator's converter finds its base model's converter by class."""
    from skl2onnx import update_registered_converter
    from skl2onnx.operator_converters.linear_classifier import convert_sklearn_linear_classifier
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    from models.monotonic import SignConstrainedLogisticRegression

    update_registered_converter(SignConstrainedLogisticRegression, "LoanRiskSignConstrainedLogisticRegression",
                                calculate_linear_classifier_output_shapes, convert_sklearn_linear_classifier,
                                options={"zipmap": [True, False, "columns"], "nocl": [True, False],
                                         "output_class_labels": [False, True], "raw_scores": [True, False]})


def export_onnx(estimator: Any, feature_names: list[str]) -> bytes:
    """The fitted ``estimator`` as ONNX: float input "features" [None, k], output "probabilities" [N, 2]."""
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer

    register_sign_constrained_logistic()
    k = len(feature_names)
    isotonic = calibrates_isotonic(estimator)
    tensor = DoubleTensorType if isotonic else FloatTensorType
    # skl2onnx's isotonic calibrator picks the nearest threshold instead of interpolating (models/onnx_isotonic.py);
    # its HistGradientBoosting converter fails under onnx 1.23 and rounds thresholds (models/onnx_boosting.py);
    # its imputer becomes an operator onnxruntime runs on float input only (models/onnx_imputer.py).
    custom = {CalibratedClassifierCV: convert_calibrated_classifier,
              HistGradientBoostingClassifier: convert_hist_gradient_boosting, SimpleImputer: convert_mean_imputer}
    model = convert_sklearn(estimator, name=f"ONNX({type(estimator).__name__})",
                            initial_types=[(ONNX_INPUT, tensor([None, k]))], options={"zipmap": False},
                            custom_conversion_functions=custom)
    graph = model.graph
    names = [o.name for o in graph.output]
    if ONNX_PROBABILITIES not in names:
        if len(names) != 2:
            raise ModelError(f"unexpected ONNX outputs {names}; expected (label, probabilities)")
        _rename_output(model, names[1], ONNX_PROBABILITIES)
    if isotonic:
        float_interface(model, ONNX_INPUT, ONNX_PROBABILITIES)
    meta = {ONNX_META_FEATURES: json.dumps(list(feature_names)),
            "feature_schema_hash": feature_schema_hash(list(feature_names))}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _rename_output(model: Any, old: str, new: str) -> None:
    """Rename graph output ``old`` to ``new`` wherever it is produced or consumed."""
    for node in model.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    for out in model.graph.output:
        if out.name == old:
            out.name = new


def onnx_metadata(model_bytes: bytes) -> dict[str, str]:
    """The ONNX model's metadata_props as a dict."""
    import onnx

    return {p.key: p.value for p in onnx.load_from_string(model_bytes).metadata_props}


def onnx_feature_names(model_bytes: bytes) -> list[str] | None:
    """Feature names embedded in the ONNX metadata (None when absent)."""
    raw = onnx_metadata(model_bytes).get(ONNX_META_FEATURES)
    return None if raw is None else list(json.loads(raw))


def parity(estimator: Any, model_bytes: bytes, X: np.ndarray) -> float:
    """max |p_sklearn - p_onnx| over rows ``X`` (both fed the same float32 values)."""
    x32 = np.ascontiguousarray(X, dtype=np.float32)
    p_skl = np.asarray(estimator.predict_proba(x32.astype(np.float64))[:, 1], dtype=np.float64)
    p_onnx = onnx_proba(session(model_bytes), x32)
    return float(np.max(np.abs(p_skl - p_onnx))) if len(x32) else 0.0


def check_parity(estimator: Any, model_bytes: bytes, X: np.ndarray,
                 tolerance: float = PARITY_TOLERANCE) -> dict[str, Any]:
    """The parity record for metadata; raises ParityError (the model must not be registered) when it fails."""
    if len(X) == 0:
        raise ParityError("parity needs at least one row (the holdout is empty)")
    diff = parity(estimator, model_bytes, X)
    record = {"max_abs_diff": diff, "rows": int(len(X)), "tolerance": tolerance, "passed": diff <= tolerance}
    if not record["passed"]:
        raise ParityError(f"ONNX and scikit-learn differ by {diff:.2e} (> {tolerance:.0e}) on {len(X)} rows; "
                          "the model is not registered")
    return record
