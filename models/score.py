"""Batch scoring with a registered model by the stream's own scorer (udfs/scorer.py): frames, files and tables.

Input rows either carry the contract feature columns already (as ``risk.scores`` or the Flink
features do) or are loan applications in the canonical schema, from which the application
features are computed with the contract formulas. The model's ``feature_names`` (metadata) pick
and order the columns; a model needing a column the input lacks is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.features import APPLICATION_FEATURE_NAMES, ATTRIBUTE_FEATURE_NAMES
from models.compat import check_model
from models.dataset import FEATURE_INPUTS, application_features, read_table_file
from models.errors import DatasetError, ModelError
from models.registry import Registry
from udfs.scorer import ModelRejected, open_model, top_reasons


class Scorer:
    """One registered model, checked against the contract and opened the way the stream's workers open it."""

    def __init__(self, model_bytes: bytes, metadata: dict[str, Any]) -> None:
        self.feature_names = check_model(model_bytes, metadata)
        self.metadata = metadata
        self.version = str(metadata.get("version", "?"))
        try:
            self.model = open_model(self.version, model_bytes, metadata, self.feature_names)
        except ModelRejected as exc:
            raise ModelError(f"the stream would refuse this model: {exc}") from None

    @classmethod
    def from_registry(cls, registry: Registry, version: str | None = None) -> Scorer:
        """The champion (or ``version``) of ``registry``."""
        model_bytes, metadata = registry.load(version)
        return cls(model_bytes, metadata)

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """The float32 [n, k] matrix in the model's feature order (computed from applications if needed).

        A missing attribute feature (contracts/attributes.py) takes the model's reference value, as in the stream.
        """
        have = set(frame.columns)
        if not set(self.feature_names) <= have and set(FEATURE_INPUTS) <= have:
            computed = application_features(frame)
            frame = pd.concat([frame.reset_index(drop=True).drop(columns=APPLICATION_FEATURE_NAMES, errors="ignore"),
                               computed], axis=1)
        missing = [n for n in self.feature_names if n not in frame.columns]
        if missing:
            raise DatasetError(f"model {self.version} needs columns the input lacks: {', '.join(missing)} "
                               "(give feature columns, or application columns for application-only models)")
        values = frame[self.feature_names]
        X = values.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
        bad = [n for j, n in enumerate(self.feature_names)
               if (np.isnan(X[:, j]) & values[n].notna().to_numpy()).any()
               or (n not in ATTRIBUTE_FEATURE_NAMES and np.isnan(X[:, j]).any())]
        if bad:
            raise DatasetError(f"null or non-numeric feature values in {', '.join(bad)}")
        return np.where(np.isnan(X), self.model.reference[np.newaxis, :], X).astype(np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(default) for a float matrix in the model's feature order."""
        return self.model.predict(X)

    def score(self, frame: pd.DataFrame, reasons: int = 3) -> pd.DataFrame:
        """``frame`` plus ``default_probability``, ``model_version`` and (when ``reasons``) ``reason_codes`` JSON."""
        X = self.features(frame)
        out = frame.reset_index(drop=True).copy()
        p = self.predict(X)
        out["default_probability"] = p
        out["model_version"] = self.version
        if reasons:
            codes = top_reasons(self.model, X, p, reasons)
            out["reason_codes"] = [json.dumps([{"feature": f, "impact": round(v, 6)} for f, v in row]) for row in codes]
        return out


def score_file(scorer: Scorer, path: str | Path, out: str | Path, reasons: int = 3) -> int:
    """Score a CSV/Parquet file into ``out`` (format by extension); returns the row count."""
    scored = scorer.score(read_table_file(path), reasons)
    write_frame(scored, out)
    return len(scored)


def score_table(scorer: Scorer, table: str, out: str | Path, catalog: Any = None, limit: int | None = None,
                reasons: int = 3) -> int:
    """Score an Iceberg table (``namespace.name``) into a file; returns the row count."""
    from models.dataset import load_catalog

    cat = catalog if catalog is not None else load_catalog()
    try:
        frame = cat.load_table(table).scan(limit=limit).to_pandas()
    except Exception as exc:  # noqa: BLE001 - the catalog and the object store raise their own types
        raise DatasetError(f"cannot read Iceberg table {table}: {type(exc).__name__}: {str(exc)[:200]}") from None
    scored = scorer.score(frame, reasons)
    write_frame(scored, out)
    return len(scored)


def write_frame(frame: pd.DataFrame, out: str | Path) -> None:
    """Write ``frame`` as Parquet (.parquet) or CSV (anything else)."""
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(p, index=False)
    else:
        frame.to_csv(p, index=False)
