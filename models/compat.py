"""Checks that a model's feature list fits the feature contract, its own ONNX file and the columns offered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from contracts.features import FEATURE_NAMES, feature_schema_hash
from contracts.registry_layout import ONNX_INPUT, ONNX_PROBABILITIES
from models.errors import FeatureMismatchError


def check_feature_list(names: Sequence[str]) -> list[str]:
    """``names`` must be distinct contract features in contract order; returns them as a list."""
    names = list(names)
    if not names:
        raise FeatureMismatchError("the model has an empty feature list")
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise FeatureMismatchError(f"features not in contracts/features.py: {', '.join(unknown)}")
    if len(set(names)) != len(names):
        raise FeatureMismatchError("the model's feature list repeats a feature")
    pos = [FEATURE_NAMES.index(n) for n in names]
    if pos != sorted(pos):
        raise FeatureMismatchError("the model's features are not in contract order (contracts/features.py)")
    return names


def check_columns(names: Sequence[str], columns: Iterable[str], exact: bool = False) -> None:
    """Every model feature must be among ``columns`` (or equal them, in order, when ``exact``)."""
    cols = list(columns)
    if exact and list(names) != cols:
        raise FeatureMismatchError(f"model features {list(names)} differ from the expected columns {cols}")
    missing = [n for n in names if n not in cols]
    if missing:
        raise FeatureMismatchError(f"the model needs features the input lacks: {', '.join(missing)}")


def onnx_signature(model_bytes: bytes) -> tuple[list[str], list[str], int | None]:
    """Input names, output names and the input's column count (None when dynamic) of an ONNX model."""
    import onnx

    graph = onnx.load_from_string(model_bytes).graph
    width = None
    if graph.input:
        dims = graph.input[0].type.tensor_type.shape.dim
        if len(dims) == 2 and dims[1].HasField("dim_value"):
            width = int(dims[1].dim_value)
    return [i.name for i in graph.input], [o.name for o in graph.output], width


def check_model(model_bytes: bytes, metadata: dict[str, Any], expected: Sequence[str] | None = None,
                exact: bool = False) -> list[str]:
    """Refuse a model whose feature list is not the contract's, its own ONNX's, or not in ``expected``."""
    from models.export import onnx_feature_names

    names = check_feature_list(metadata.get("feature_names") or [])
    if metadata.get("feature_schema_hash") != feature_schema_hash(names):
        raise FeatureMismatchError("feature_schema_hash in metadata does not match its feature_names")
    embedded = onnx_feature_names(model_bytes)
    if embedded != names:
        raise FeatureMismatchError(f"ONNX metadata feature_names {embedded} differ from metadata.json {names}")
    inputs, outputs, width = onnx_signature(model_bytes)
    if inputs != [ONNX_INPUT] or ONNX_PROBABILITIES not in outputs:
        raise FeatureMismatchError(f"ONNX signature {inputs} -> {outputs}; expected [{ONNX_INPUT}] -> "
                                   f"[..., {ONNX_PROBABILITIES}]")
    if width is not None and width != len(names):
        raise FeatureMismatchError(f"ONNX input takes {width} columns but the model lists {len(names)} features")
    if expected is not None:
        check_columns(names, expected, exact)
    return names
