"""The models' mean imputer in ONNX with standard operators: ``Where(IsNaN(x), means, x)``.

skl2onnx converts SimpleImputer to the ``ai.onnx.ml`` Imputer operator, which onnxruntime implements for
float input only, while an isotonic export takes double input (models/onnx_isotonic.py). The same
selection in standard operators runs at either precision: each NaN takes its column's training mean,
cast to the input's type, every other value passes through unchanged, as ``SimpleImputer.transform`` does.

:func:`convert_mean_imputer` is passed to ``convert_sklearn`` per export, like the other converters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.errors import ModelError


def convert_mean_imputer(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter for a fitted SimpleImputer of NaN (any statistic: the fitted one per column)."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType

    imputer = operator.raw_operator
    missing = imputer.missing_values
    if not (isinstance(missing, float) and np.isnan(missing)) or getattr(imputer, "add_indicator", False):
        raise ModelError("the ONNX export imputes NaN only, without indicator columns (models/train.py mean_imputer)")
    statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    if not np.isfinite(statistics).all():
        raise ModelError("the imputer has a column without a finite statistic; build it with keep_empty_features")
    double = isinstance(operator.inputs[0].type, DoubleTensorType)
    dtype, onnx_type = (np.float64, TensorProto.DOUBLE) if double else (np.float32, TensorProto.FLOAT)
    x = operator.inputs[0].full_name
    means = scope.get_unique_variable_name("imputer_means")
    container.add_initializer(means, onnx_type, [len(statistics)], statistics.astype(dtype).tolist())
    is_nan = scope.get_unique_variable_name("imputer_is_nan")
    container.add_node("IsNaN", [x], [is_nan], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node("Where", [is_nan, means, x], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Where"))
