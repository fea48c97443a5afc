"""Score drift: a model's training score distribution (stored in its metadata) and PSI of later scores against it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BINS = 10
EPSILON = 1e-4  # share given to an empty bin so the log stays finite


def score_reference(probabilities: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Quantile bin edges of the training scores and the share of scores in each bin."""
    p = np.asarray(probabilities, dtype=float)
    p = p[np.isfinite(p)]
    if p.size == 0:
        raise ValueError("no scores to build a reference from")
    inner = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = [0.0, *[float(e) for e in inner], 1.0]
    return {"edges": edges, "shares": bin_shares(p, edges), "rows": int(p.size), "bins": len(edges) - 1}


def bin_shares(probabilities: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Share of ``probabilities`` in each bin [e_i, e_i+1) (the last bin closed at 1)."""
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    inner = np.asarray(edges[1:-1], dtype=float)
    idx = np.searchsorted(inner, p, side="right")
    counts = np.bincount(idx, minlength=len(edges) - 1).astype(float)
    return (counts / max(counts.sum(), 1.0)).tolist()


def psi(reference: dict[str, Any], probabilities: np.ndarray) -> float:
    """Population stability index of ``probabilities`` against a :func:`score_reference`."""
    expected = np.maximum(np.asarray(reference["shares"], dtype=float), EPSILON)
    actual = np.maximum(np.asarray(bin_shares(probabilities, reference["edges"]), dtype=float), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_band(value: float) -> str:
    """The usual reading of a PSI value: stable (< 0.1), moderate shift (< 0.25), major shift."""
    return "stable" if value < 0.1 else "moderate shift" if value < 0.25 else "major shift"
