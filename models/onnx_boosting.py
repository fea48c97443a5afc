"""HistGradientBoostingClassifier in ONNX: skl2onnx's tree walk, with the two faults of its converter mended.

skl2onnx 1.20's converter fails under onnx 1.23 (``TypeError: Field onnx.AttributeProto.ints:
Expected an int, got a boolean``): it records a leaf's missing-value flag as the Python bool False,
which onnx no longer accepts in an integer list. And it rounds each split threshold to the nearest
float32, while scikit-learn compares the float64 threshold: a float32 input lying between the two
goes the other way. Here the flags are integers and each threshold is the largest float32 not above
it (``sklearn_threshold``, what skl2onnx does for scikit-learn's own trees), so for every float32
input ``x <= t32`` exactly when ``x <= t``. The stream feeds float32 features; the double-input graph
of an isotonic export receives float32 values too.

:func:`convert_hist_gradient_boosting` is passed to ``convert_sklearn`` per export, like the isotonic
converter (models/onnx_isotonic.py); it handles binary classifiers, the only kind trained here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.errors import ModelError


def convert_hist_gradient_boosting(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter for a binary HistGradientBoostingClassifier (one TreeEnsembleClassifier node)."""
    from skl2onnx.common.tree_ensemble import (
        add_tree_to_attribute_pairs_hist_gradient_boosting, get_default_tree_classifier_attribute_pairs,
    )

    model = operator.raw_operator
    classes = np.asarray(model.classes_)
    if model.n_trees_per_iteration_ != 1 or len(classes) != 2 or classes.dtype.kind not in "iub":
        raise ModelError(f"HistGradientBoosting export supports binary integer labels, not {classes.tolist()}")
    # The calibrator's converter asks for raw scores (the decision function it was fitted on).
    raw_scores = container.get_options(model, {"raw_scores": False})["raw_scores"]
    attrs = get_default_tree_classifier_attribute_pairs()
    attrs["name"] = scope.get_unique_operator_name("TreeEnsembleClassifier")
    attrs["classlabels_int64s"] = [int(c) for c in classes]
    for tree_id, trees in enumerate(model._predictors):
        add_tree_to_attribute_pairs_hist_gradient_boosting(attrs, True, trees[0], tree_id, 1.0, 0, False,
                                                           adjust_threshold_for_sklearn=True, dtype=np.float32)
    attrs["nodes_missing_value_tracks_true"] = [int(v) for v in attrs["nodes_missing_value_tracks_true"]]
    attrs["base_values"] = [float(np.ravel(model._baseline_prediction)[0])]
    attrs["post_transform"] = "NONE" if raw_scores else "LOGISTIC"
    for key in ("nodes_values", "nodes_hitrates", "class_weights", "base_values"):
        attrs[key] = np.asarray(attrs[key], dtype=np.float32)
    container.add_node("TreeEnsembleClassifier", operator.input_full_names,
                       [operator.outputs[0].full_name, operator.outputs[1].full_name],
                       op_domain="ai.onnx.ml", op_version=1, **attrs)
