"""Flink SQL fragments derived from the contracts: parse specs, typed projections and table declarations.

sql/ files use them as ``${<event>_spec}`` (the contract for the Java ``parse_event`` function, which
validates in the order of contracts/validate.py) and ``${<event>_columns}``, so the schema lives once, in
contracts/events.py; the tables' columns and INSERT lists come from contracts/table_sql.py. Every spec
:func:`sql_fragments` renders carries the same future tolerance, so ``parse_event`` dead-letters exactly
the events ``event_time_of`` keeps from advancing the watermark. ``${payload_is_heartbeat}`` is the
watermark heartbeat test of contracts/heartbeat.py. ``${attribute_features}`` and ``${attribute_features_of_a}``
are the application attributes' features (contracts/attributes.py), each item followed by a comma, so
that a SELECT list reads the same with none declared.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from contracts.events import INPUT_EVENTS
from contracts.features import ATTRIBUTE_FEATURE_NAMES, FEATURE_NAMES
from contracts.fx import FX_TABLE, minor_to_reporting_factor
from contracts.heartbeat import heartbeat_condition
from contracts.schema import EventContract
from contracts.table_sql import flink_name, table_fragments
from contracts.validate import DEFAULT_FUTURE_TOLERANCE, MAX_PAYLOAD_CHARS, PAST_LIMIT_MS


def _spec_json(fields: list[dict[str, Any]], event_time_field: str, future_tolerance: timedelta) -> str:
    """The spec text: the fields plus the limits every contract shares (size, future tolerance, oldest time)."""
    if future_tolerance < timedelta(0):
        raise ValueError(f"the future tolerance must not be negative, got {future_tolerance}")
    return json.dumps({"fields": fields, "event_time_field": event_time_field, "max_chars": MAX_PAYLOAD_CHARS,
                       "future_tolerance_ms": future_tolerance // timedelta(milliseconds=1),
                       "past_limit_ms": PAST_LIMIT_MS}, separators=(",", ":"))


def parse_spec(c: EventContract, future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE) -> str:
    """The contract as the JSON spec the Java ``parse_event``/``event_time_of`` functions read (jvm/functions)."""
    fields = [{"name": f.name, "type": f.type, "nullable": f.nullable, "minimum": f.minimum, "maximum": f.maximum,
               "choices": list(f.choices) if f.choices else None, "pii": f.pii} for f in c.fields]
    return _spec_json(fields, c.event_time_field, future_tolerance)


def source_event_time_spec(future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE) -> str:
    """The spec ``event_time_of`` reads in the Kafka source tables: the event-time field all inputs share."""
    names = {c.event_time_field for c in INPUT_EVENTS}
    if len(names) != 1:
        raise ValueError(f"the input contracts disagree on the event-time field: {sorted(names)}")
    name = names.pop()
    return _spec_json([{"name": name, "type": "timestamp", "nullable": False}], name, future_tolerance)


def projection(c: EventContract) -> str:
    """SELECT list of the typed columns ``parse_event`` returned (as ``e``); PII replaced by its keyed pseudonym.

    ``pii_hash`` (jvm/functions) reads its HMAC key from a file on the TaskManager, so no key is in the SQL.
    """
    cols = []
    for f in c.fields:
        # The event-time field is the source's rowtime attribute (parsed once there, watermarked).
        expr = "event_time" if f.name == c.event_time_field else f"e.{f.name}"
        if f.pii:
            expr = f"pii_hash({expr})"
        cols.append(f"{expr} AS {f.name}")
    return ",\n  ".join(cols)


def attribute_fragments() -> dict[str, str]:
    """The attribute features as computed from a loan_application (``attribute_features``) and as read back
    from the table alias ``a`` (``attribute_features_of_a``): each item ends in a comma."""
    return {"attribute_features": "".join(f"CAST({flink_name(n)} AS DOUBLE) AS {flink_name(n)}, "
                                          for n in ATTRIBUTE_FEATURE_NAMES),
            "attribute_features_of_a": "".join(f"a.{flink_name(n)}, " for n in ATTRIBUTE_FEATURE_NAMES)}


def sql_fragments(future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE) -> dict[str, str]:
    """Every fragment, keyed by the parameter name the sql/ files use.

    ``future_tolerance`` is the job's (``settings.flink.future_tolerance``); it goes into every spec.
    """
    out: dict[str, str] = {}
    for c in INPUT_EVENTS:
        out[f"{c.name}_columns"] = projection(c)
        out[f"{c.name}_spec"] = parse_spec(c, future_tolerance).replace("'", "''")
    out["source_event_time_spec"] = source_event_time_spec(future_tolerance).replace("'", "''")
    out["payload_is_heartbeat"] = heartbeat_condition("payload")
    return {**out, **attribute_fragments(), **table_fragments()}


# The scorer's result: the champion's score, and each shadow challenger's probability by version (empty or NULL
# without challengers). One call returns both, so the job runs one scorer (sql/risk/80_scores.sql).
SCORE_ROW = ("ROW<probability DOUBLE, model_version STRING, reason_codes STRING, "
             "challengers MAP<STRING, DOUBLE>>")

# The "no model" limit used by benchmarks: a fixed logistic expression in built-in SQL.
_BUILTIN_WEIGHTS = {"debt_to_income": 1.5, "installment_to_income": 2.0, "credit_utilization": 0.8,
                    "interest_rate": 0.08, "delinquencies_2y": 0.3, "dpd_max": 0.05, "missed_payments": 0.6,
                    "income_stability": -1.0}


def scoring_fragments(scorer: str) -> dict[str, str]:
    """``score_call`` (the ONNX pandas UDF or the built-in expression), feature lists and the FX expression."""
    features = ", ".join(flink_name(n) for n in FEATURE_NAMES)
    if scorer == "onnx":
        call = f"score_loan({features})"
    elif scorer == "onnx-row":
        call = f"score_loan_row({features})"
    else:
        linear = " + ".join(f"{w} * {n}" for n, w in _BUILTIN_WEIGHTS.items())
        call = (f"CAST(ROW(1 / (1 + EXP(-(-4.0 + {linear}))), 'builtin', '', CAST(NULL AS MAP<STRING, DOUBLE>)) "
                f"AS {SCORE_ROW})")
    fx = " ".join(f"WHEN '{code}' THEN {minor_to_reporting_factor(code)!r}" for code in FX_TABLE)
    return {
        "score_call": call,
        "feature_names": features,
        "fx_usd_per_minor": f"(CASE currency {fx} ELSE CAST(NULL AS DOUBLE) END)",
    }
