"""Per-loan reason codes: the features whose replacement by their reference value lowers the score most.

For a loan x and feature j: ``impact_j = p(x) - p(x with x_j := reference_j)``, the reference being
the training mean stored as ``feature_reference`` in the model's metadata. Positive impacts push the
score up; the top ones are the reasons. numpy only, so the streaming scorer can compute the same
with its onnxruntime session: all k perturbed copies go through the model in one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]
MIN_IMPACT = 1e-6  # drops below this are float noise, never a reason (the stream's scorer uses the same)


def impacts(predict: Predict, X: np.ndarray, feature_names: Sequence[str],
            reference: Mapping[str, float]) -> np.ndarray:
    """An [n, k] array: the probability drop when each feature is set to its reference value."""
    X = np.asarray(X, dtype=np.float32)
    n, k = X.shape
    if k != len(feature_names):
        raise ValueError(f"{k} columns but {len(feature_names)} feature names")
    ref = np.array([reference[name] for name in feature_names], dtype=np.float32)
    batch = np.repeat(X[np.newaxis, :, :], k + 1, axis=0)  # [k+1, n, k]; copy 0 is the loan itself
    for j in range(k):
        batch[j + 1, :, j] = ref[j]
    p = np.asarray(predict(batch.reshape((k + 1) * n, k)), dtype=np.float64).reshape(k + 1, n)
    return (p[0][np.newaxis, :] - p[1:]).T


def top_reasons(impact: np.ndarray, feature_names: Sequence[str], top: int = 3,
                min_impact: float = MIN_IMPACT) -> list[list[tuple[str, float]]]:
    """Per row, up to ``top`` (feature, impact) pairs with impact > ``min_impact``, largest first."""
    order = np.argsort(-impact, axis=1, kind="stable")[:, :top]
    out: list[list[tuple[str, float]]] = []
    for row, idx in zip(impact, order):
        out.append([(feature_names[j], float(row[j])) for j in idx if row[j] > min_impact])
    return out


def reason_codes(predict: Predict, X: np.ndarray, feature_names: Sequence[str], reference: Mapping[str, float],
                 top: int = 3) -> list[list[tuple[str, float]]]:
    """Top features pushing each loan's score up (probability drop when reset to the reference)."""
    if len(X) == 0:
        return []
    return top_reasons(impacts(predict, X, feature_names, reference), feature_names, top)
