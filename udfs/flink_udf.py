"""PyFlink scalar UDFs on the champion model and the shadow challengers: ``score_loan`` (pandas, vectorized) and
``score_loan_row``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pyflink.table import DataTypes, Row
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from contracts.features import FEATURE_NAMES
from udfs.scorer import SCORER_PARAMETERS, Scorer, scorer_from_parameters

# Job parameters read in open() (pipeline.global-job-parameters) and their defaults.
JOB_PARAMETERS: dict[str, str] = SCORER_PARAMETERS

RESULT_TYPE = DataTypes.ROW([
    DataTypes.FIELD("probability", DataTypes.DOUBLE()),
    DataTypes.FIELD("model_version", DataTypes.STRING()),
    DataTypes.FIELD("reason_codes", DataTypes.STRING()),
    # Each challenger's probability by version: a map, since the pandas path cannot return an array of rows.
    DataTypes.FIELD("challengers", DataTypes.MAP(DataTypes.STRING(), DataTypes.DOUBLE())),
])
INPUT_TYPES = [DataTypes.DOUBLE()] * len(FEATURE_NAMES)


def version_number(version: str) -> int:
    """The number in a version name ("v0003" -> 3; 0 when there is none)."""
    m = re.search(r"(\d+)$", version)
    return int(m.group(1)) if m else 0


def global_job_parameters(params: Mapping[str, Any]) -> str:
    """``params`` as a ``pipeline.global-job-parameters`` value: a JSON (YAML flow) map, so ':' and ',' survive.

    The legacy ``k1:v1,k2:v2`` form breaks on URLs; Flink 2.1 parses this form into the same map.
    """
    return json.dumps({str(k): str(v) for k, v in params.items()})


def scorer_from_job_parameters(ctx: FunctionContext) -> Scorer:
    """A Scorer of the champion and the challengers, configured from the job parameters (raises on bad parameters,
    never because of a model)."""
    return scorer_from_parameters(lambda name: ctx.get_job_parameter(name, None), FEATURE_NAMES, shadow=True)


class ScoreLoan(ScalarFunction):
    """Scores loans with the champion and the challengers; ``vectorized`` picks pandas batches (Series in) or single
    rows."""

    def __init__(self, vectorized: bool = True) -> None:
        self.vectorized = vectorized
        self._scorer: Scorer | None = None
        self._metrics: dict[str, Any] = {}
        self._reported: dict[str, int] = {}
        self._zeroed = False

    def open(self, function_context: FunctionContext) -> None:
        """Load the champion (or the last good one) once per worker and register the metrics."""
        self._scorer = scorer_from_job_parameters(function_context)
        self._metrics = {}
        self._reported = {"model_load_failures": 0, "registry_poll_failures": 0, "model_unavailable_rows": 0,
                          "challenger_load_failures": 0}
        self._zeroed = False
        try:
            group = function_context.get_metric_group()
        except RuntimeError:  # python.metric.enabled is false
            return
        scorer = self._scorer
        self._metrics = {
            "model_load_failures": group.counter("model_load_failures"),
            "registry_poll_failures": group.counter("registry_poll_failures"),
            "model_unavailable_rows": group.counter("model_unavailable_rows"),
            "challenger_load_failures": group.counter("challenger_load_failures"),
            "scored_rows": group.counter("scored_rows"),
            # Counters, not a distribution: Flink's Prometheus reporter cannot export Beam distributions.
            "score_calls": group.counter("score_calls"),
            "score_latency_us": group.counter("score_latency_us"),
        }
        group.gauge("model_version_number", lambda: version_number(scorer.model_version or ""))
        group.gauge("challengers_scored", lambda: len(scorer.challenger_versions))

    def close(self) -> None:
        """Drop the model."""
        self._scorer = None

    def _after(self, rows: int, started: float) -> None:
        """Export counters and the batch latency."""
        if not self._metrics or self._scorer is None:
            return
        if not self._zeroed:
            # Export the failure counters at 0 (a counter touched inside a bundle is reported; one touched
            # in open() is not), so Prometheus has them before the first failure and increase() sees it.
            for name in self._reported:
                self._metrics[name].inc(0)
            self._zeroed = True
        for name in self._reported:
            now = int(getattr(self._scorer, name))
            if now > self._reported[name]:
                self._metrics[name].inc(now - self._reported[name])
                self._reported[name] = now
        self._metrics["scored_rows"].inc(rows)
        self._metrics["score_calls"].inc(1)
        self._metrics["score_latency_us"].inc(int((time.perf_counter() - started) * 1e6))

    def eval(self, *features: Any) -> Any:
        """pandas: 20 Series -> DataFrame(probability, model_version, reason_codes, challengers); row: 20 floats -> Row.

        Without a champion its fields are NULL (the pandas path's NaN probability becomes NULL in Arrow); the
        challengers' map is empty without challengers.
        """
        if self._scorer is None:
            raise RuntimeError("score_loan used before open()")
        started = time.perf_counter()
        if self.vectorized:
            X = np.column_stack([pd.Series(s).to_numpy(dtype=np.float64, na_value=np.nan) for s in features])
            X = X.reshape(-1, len(FEATURE_NAMES))
            p, version, reasons = self._scorer.score_matrix(X)
            shadow = self._scorer.challenger_scores(X)
            self._after(len(p), started)
            return pd.DataFrame({"probability": p, "model_version": [version] * len(p), "reason_codes": reasons,
                                 "challengers": shadow})
        row = np.array([[np.nan if v is None else float(v) for v in features]], dtype=np.float64)
        p, version, reasons = self._scorer.score_matrix(row)
        shadow = self._scorer.challenger_scores(row)
        self._after(1, started)
        return Row(None if version is None else float(p[0]), version, reasons[0], dict(shadow[0]))

    def is_deterministic(self) -> bool:
        """Not deterministic: the champion can change between calls."""
        return False


score_loan = udf(ScoreLoan(vectorized=True), input_types=INPUT_TYPES, result_type=RESULT_TYPE,
                 func_type="pandas", deterministic=False, name="score_loan")
score_loan_row = udf(ScoreLoan(vectorized=False), input_types=INPUT_TYPES, result_type=RESULT_TYPE,
                     func_type="general", deterministic=False, name="score_loan_row")
