"""Isotonic calibration in ONNX as scikit-learn computes it: linear interpolation between the fitted thresholds.

skl2onnx's own CalibratedClassifierCV converter gives an isotonic calibrator's score the y of the
*nearest* threshold (ArgMin of the distance), while ``IsotonicRegression.predict`` interpolates
linearly between the two thresholds around the score. Between two thresholds the two differ by up to
half the step in y, which is why isotonic models failed the parity check (docs/MODELS.md).

:func:`convert_calibrated_classifier` replaces that converter for one export (it is passed to
``convert_sklearn`` per call, never registered globally): sigmoid calibration goes to skl2onnx's
converter unchanged; isotonic calibration becomes

    score -> Cast(double) -> clip to [X_min_, X_max_] -> j = #{thresholds x_k, k >= 1, below the score}
          -> p = y_j + (score - x_j) * slope_j

the same lookup and the same arithmetic, in the same order and precision, as scipy's ``interp1d``
that ``IsotonicRegression`` uses (``searchsorted`` on the left, slopes precomputed in float64), so for
equal scores the probabilities agree bit for bit. The graph keeps the contract of the other families:
input ``features`` float [N, k], outputs ``label`` and ``probabilities`` [N, 2] float.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from models.errors import ModelError


class GraphBuilder(Protocol):
    """The two calls the interpolation needs, so the same nodes go into a skl2onnx export or a bare graph."""

    def const(self, hint: str, value: np.ndarray) -> str:
        """Add ``value`` as an initializer; return its name."""
        ...

    def node(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        """Add one node with one output; return the output's name."""
        ...


def interpolation_table(calibrator: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x_k, y_k, slope_k) of a fitted IsotonicRegression, float64, slopes as scipy's interp1d computes them."""
    x = np.asarray(calibrator.X_thresholds_, dtype=np.float64)
    y = np.asarray(calibrator.y_thresholds_, dtype=np.float64)
    if getattr(calibrator, "out_of_bounds", "clip") != "clip":
        raise ModelError("isotonic ONNX export needs out_of_bounds='clip' (what CalibratedClassifierCV fits)")
    if len(x) > 1 and not np.all(np.diff(x) > 0):
        raise ModelError("isotonic thresholds are not strictly increasing; refit the calibrator")
    slope = (y[1:] - y[:-1]) / (x[1:] - x[:-1]) if len(x) > 1 else np.zeros(0)
    return x, y, slope


def add_isotonic(g: GraphBuilder, score: str, calibrator: Any) -> str:
    """Nodes computing ``calibrator.predict(score)`` for a score column [N, 1]; returns a double [N, 1]."""
    from onnx import TensorProto

    x, y, slope = interpolation_table(calibrator)
    s = g.node("Cast", [score], "iso_score", to=TensorProto.DOUBLE)
    s = g.node("Max", [s, g.const("iso_x_min", np.array(x[0]))], "iso_above_min")
    s = g.node("Min", [s, g.const("iso_x_max", np.array(x[-1]))], "iso_clipped")
    if len(x) == 1:  # one threshold: scikit-learn predicts its y everywhere
        zero = g.node("Mul", [s, g.const("iso_zero", np.array(0.0))], "iso_zeros")
        return g.node("Add", [zero, g.const("iso_y", np.array(y[0]))], "iso_p")
    # j: thresholds x_1.. strictly below the score (searchsorted, left), at most the last segment's index.
    below = g.node("Less", [g.const("iso_x_upper", x[1:]), s], "iso_below")
    count = g.node("ReduceSum", [g.node("Cast", [below], "iso_below_int", to=TensorProto.INT64),
                                 g.const("iso_axis", np.array([1], dtype=np.int64))], "iso_count", keepdims=1)
    j = g.node("Min", [count, g.const("iso_last", np.array(len(x) - 2, dtype=np.int64))], "iso_segment")
    x_lo = g.node("Gather", [g.const("iso_x_lower", x[:-1]), j], "iso_x_lo")
    y_lo = g.node("Gather", [g.const("iso_y_lower", y[:-1]), j], "iso_y_lo")
    k = g.node("Gather", [g.const("iso_slopes", slope), j], "iso_slope")
    rise = g.node("Mul", [k, g.node("Sub", [s, x_lo], "iso_run")], "iso_rise")
    return g.node("Add", [rise, y_lo], "iso_p")


class _SklearnBuilder:
    """GraphBuilder over a skl2onnx scope and container (inside a converter)."""

    def __init__(self, scope: Any, container: Any) -> None:
        self.scope, self.container = scope, container

    def const(self, hint: str, value: np.ndarray) -> str:
        from onnx import TensorProto

        name = self.scope.get_unique_variable_name(hint)
        kind = TensorProto.INT64 if value.dtype.kind == "i" else TensorProto.DOUBLE
        self.container.add_initializer(name, kind, list(value.shape), value.ravel().tolist())
        return str(name)

    def node(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.scope.get_unique_variable_name(hint)
        self.container.add_node(op_type, inputs, out, name=self.scope.get_unique_operator_name(op_type), **attrs)
        return str(out)


class BareGraph:
    """GraphBuilder that collects plain onnx nodes, for a graph of the interpolation alone (tests, checks)."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._n = 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        from onnx import helper

        out = self._name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def isotonic_model(calibrator: Any, opset: int = 17) -> bytes:
    """An ONNX model of ``calibrator.predict`` alone: input "score" double [N, 1], output "p" double [N, 1]."""
    import onnx
    from onnx import TensorProto, helper

    g = BareGraph()
    p = add_isotonic(g, "score", calibrator)
    g.nodes.append(helper.make_node("Identity", [p], ["p"], name="p"))
    graph = helper.make_graph(g.nodes, "isotonic", [helper.make_tensor_value_info("score", TensorProto.DOUBLE,
                                                                                   [None, 1])],
                              [helper.make_tensor_value_info("p", TensorProto.DOUBLE, [None, 1])], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _positive_score(scope: Any, operator: Any, container: Any, estimator: Any) -> str:
    """The base estimator's score column the calibrator was fitted on: decision function, else P(class 1).

    The same choice as skl2onnx's converter and scikit-learn's ``_get_response_values``: raw scores for
    estimators with a decision function, probabilities for random forests.
    """
    from onnx import TensorProto
    from sklearn.ensemble import RandomForestClassifier
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common.data_types import Int64TensorType

    base = scope.declare_local_operator(sklearn_operator_name_map[type(estimator)], estimator)
    if container.has_options(estimator, "raw_scores") and not isinstance(estimator, RandomForestClassifier):
        container.add_options(id(estimator), {"raw_scores": True})
        scope.add_options(id(estimator), {"raw_scores": True})
    base.inputs = operator.inputs
    base.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    scores = scope.declare_local_variable("uncal_scores", operator.inputs[0].type.__class__())
    base.outputs.append(scores)
    column = scope.get_unique_variable_name("positive_column")
    container.add_initializer(column, TensorProto.INT64, [], [1])
    out = scope.get_unique_variable_name("positive_score")
    container.add_node("ArrayFeatureExtractor", [scores.full_name, column], out, op_domain="ai.onnx.ml",
                       name=scope.get_unique_operator_name("PositiveScore"))
    return str(out)


def convert_calibrated_classifier(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter for CalibratedClassifierCV: skl2onnx's own for sigmoid, interpolation for isotonic."""
    from onnx import TensorProto
    from skl2onnx.operator_converters.calibrated_classifier_cv import convert_sklearn_calibrated_classifier_cv

    model = operator.raw_operator
    if model.method != "isotonic":
        convert_sklearn_calibrated_classifier_cv(scope, operator, container)
        return
    classes = np.asarray(model.classes_)
    if len(classes) != 2 or classes.dtype.kind not in "iub":
        raise ModelError(f"isotonic ONNX export supports binary integer labels, not classes {classes.tolist()}")
    g = _SklearnBuilder(scope, container)
    positives = []
    for clf in model.calibrated_classifiers_:
        score = _positive_score(scope, operator, container, clf.estimator)
        positives.append(add_isotonic(g, score, clf.calibrators[0]))
    p = positives[0] if len(positives) == 1 else g.node(
        "Div", [g.node("Sum", positives, "iso_sum"), g.const("iso_models", np.array(float(len(positives))))],
        "iso_mean")
    negatives = g.node("Sub", [g.const("iso_one", np.array(1.0)), p], "iso_negative")
    both = g.node("Concat", [negatives, p], "iso_proba", axis=1)
    out_type = TensorProto.DOUBLE if operator.outputs[1].type.__class__.__name__ == "DoubleTensorType" \
        else TensorProto.FLOAT
    container.add_node("Cast", [both], operator.outputs[1].full_name, to=out_type,
                       name=scope.get_unique_operator_name("Cast"))
    index = g.node("ArgMax", [both], "iso_argmax", axis=1, keepdims=0)
    container.add_node("Gather", [g.const("iso_classes", classes.astype(np.int64)), index],
                       operator.outputs[0].full_name, name=scope.get_unique_operator_name("Gather"))


def calibrates_isotonic(estimator: Any) -> bool:
    """True when ``estimator`` is, or ends in, an isotonic CalibratedClassifierCV."""
    last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return getattr(last, "method", None) == "isotonic" and hasattr(last, "calibrated_classifiers_")


def float_interface(model: Any, input_name: str, output_name: str) -> None:
    """Give a graph converted for double input the float contract: float ``input_name``, float ``output_name``.

    Isotonic calibration is steep where thresholds sit close together, so a score computed in float32
    can move the probability by more than the parity tolerance; the graph therefore computes in double
    between a Cast of the float input and a Cast of the probabilities back to float. Tree ensembles
    still score in float (ai.onnx.ml TreeEnsembleClassifier has a float output only).
    """
    from onnx import TensorProto, helper

    graph = model.graph
    inner_in, inner_out = f"{input_name}_as_double", f"{output_name}_as_double"
    for node in graph.node:
        node.input[:] = [inner_in if i == input_name else inner_out if i == output_name else i for i in node.input]
        node.output[:] = [inner_out if o == output_name else o for o in node.output]
    for value in graph.input:
        if value.name == input_name:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    for value in graph.output:
        if value.name == output_name:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    stale = [v for v in graph.value_info if v.name in (input_name, output_name)]
    for v in stale:
        graph.value_info.remove(v)
    nodes = [helper.make_node("Cast", [input_name], [inner_in], to=TensorProto.DOUBLE, name="input_as_double"),
             *graph.node,
             helper.make_node("Cast", [inner_out], [output_name], to=TensorProto.FLOAT, name="output_as_float")]
    del graph.node[:]
    graph.node.extend(nodes)
