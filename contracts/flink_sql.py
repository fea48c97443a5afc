"""Flink SQL fragments derived from the contracts: typed projections, validation rules and lake columns.

sql/ files use them as ``${<event>_columns}``, ``${<event>_reason}`` and ``${<event>_lake_columns}``,
so the schema lives once, in contracts/events.py.
"""

from __future__ import annotations

from contracts.events import INPUT_EVENTS
from contracts.features import FEATURE_NAMES
from contracts.fx import FX_TABLE, minor_to_reporting_factor
from contracts.schema import TYPE_MAP, EventContract, Field
from contracts.validate import MAX_PAYLOAD_CHARS, TOO_LARGE

_ISO_FORMAT = "yyyy-MM-dd''T''HH:mm:ss.SSS''Z''"


def _raw(f: Field) -> str:
    return f"JSON_VALUE(payload, '$.{f.name}')"


def typed(f: Field) -> str:
    """Expression turning the raw JSON field into its Flink type (NULL when it does not parse)."""
    raw = _raw(f)
    if f.type == "timestamp":
        return f"CAST(TO_TIMESTAMP({raw}, '{_ISO_FORMAT}') AS TIMESTAMP_LTZ(6))"
    if f.type == "string":
        return raw
    return f"TRY_CAST({raw} AS {TYPE_MAP[f.type][0]})"


def projection(c: EventContract, pii_key: str) -> str:
    """SELECT list of typed columns; PII fields replaced by a keyed SHA-256 hash."""
    cols = []
    for f in c.fields:
        # The event-time field is the source's rowtime attribute (parsed once there, watermarked).
        expr = "event_time" if f.name == c.event_time_field else typed(f)
        if f.pii:
            expr = f"CASE WHEN {expr} IS NULL THEN NULL ELSE SHA256(CONCAT('{pii_key}', {expr})) END"
        cols.append(f"{expr} AS {f.name}")
    return ",\n  ".join(cols)


def reason(c: EventContract) -> str:
    """CASE expression naming the first rule a message breaks, or NULL when it is valid."""
    # Size first: a huge payload is refused before any JSON parsing (each rule below re-reads it).
    rules = [f"WHEN CHAR_LENGTH(payload) > {MAX_PAYLOAD_CHARS} THEN '{TOO_LARGE}'",
             "WHEN payload IS NULL OR payload IS NOT JSON OBJECT THEN 'invalid_json'"]
    for f in c.fields:
        if not f.nullable:
            rules.append(f"WHEN {_raw(f)} IS NULL THEN 'missing:{f.name}'")
    for f in c.fields:
        # JSON_VALUE returns every scalar as text, so the JSON type is checked on the payload itself:
        # a quoted value where a number/boolean belongs (or the reverse) is a type error.
        if f.type in ("string", "date", "timestamp"):
            rules.append(f"WHEN REGEXP(payload, '\"{f.name}\"\\s*:\\s*[-0-9tf\\[{{]') THEN 'type:{f.name}'")
        else:
            rules.append(f"WHEN REGEXP(payload, '\"{f.name}\"\\s*:\\s*[\"\\[{{]') THEN 'type:{f.name}'")
        if f.type != "string":
            rules.append(f"WHEN {_raw(f)} IS NOT NULL AND {typed(f)} IS NULL THEN 'type:{f.name}'")
    for f in c.fields:
        if f.minimum is not None:
            rules.append(f"WHEN {typed(f)} < {f.minimum:g} THEN 'range:{f.name}'")
        if f.maximum is not None:
            rules.append(f"WHEN {typed(f)} > {f.maximum:g} THEN 'range:{f.name}'")
        if f.choices:
            allowed = ", ".join(f"'{v}'" for v in f.choices)
            rules.append(f"WHEN {_raw(f)} IS NOT NULL AND {_raw(f)} NOT IN ({allowed}) THEN 'choice:{f.name}'")
        if f.type == "double":
            rules.append(f"WHEN {typed(f)} <> {typed(f)} THEN 'nan:{f.name}'")
    ev = typed(c.field(c.event_time_field))
    rules.append(f"WHEN {ev} > ingested_at + INTERVAL '1' DAY THEN 'future_event_time'")
    rules.append(f"WHEN {ev} < TIMESTAMP '2000-01-01 00:00:00' THEN 'past_event_time'")
    return "CASE\n    " + "\n    ".join(rules) + "\n    ELSE CAST(NULL AS STRING) END"


def lake_columns(c: EventContract) -> str:
    """Column definitions of the raw Iceberg table (nullable, as Iceberg evolves more easily that way)."""
    cols = [f"{f.name} {TYPE_MAP[f.type][0]}" for f in c.fields]
    cols += ["ingested_at TIMESTAMP_LTZ(6)", "event_date DATE"]
    return ",\n  ".join(cols)


def sql_fragments(pii_key: str) -> dict[str, str]:
    """Every fragment, keyed by the parameter name the sql/ files use."""
    out: dict[str, str] = {}
    for c in INPUT_EVENTS:
        out[f"{c.name}_columns"] = projection(c, pii_key.replace("'", "''"))
        out[f"{c.name}_reason"] = reason(c)
        out[f"{c.name}_lake_columns"] = lake_columns(c)
        out[f"{c.name}_names"] = ", ".join(c.names)
    return out


SCORE_ROW = "ROW<probability DOUBLE, model_version STRING, reason_codes STRING>"

# The "no model" limit used by benchmarks: a fixed logistic expression in built-in SQL.
_BUILTIN_WEIGHTS = {"debt_to_income": 1.5, "installment_to_income": 2.0, "credit_utilization": 0.8,
                    "interest_rate": 0.08, "delinquencies_2y": 0.3, "dpd_max": 0.05, "missed_payments": 0.6,
                    "income_stability": -1.0}


def scoring_fragments(scorer: str) -> dict[str, str]:
    """``score_call`` (the ONNX pandas UDF or the built-in expression), feature lists and the FX expression."""
    features = ", ".join(FEATURE_NAMES)
    if scorer == "onnx":
        call = f"score_loan({features})"
    elif scorer == "onnx-row":
        call = f"score_loan_row({features})"
    else:
        linear = " + ".join(f"{w} * {n}" for n, w in _BUILTIN_WEIGHTS.items())
        call = f"CAST(ROW(1 / (1 + EXP(-(-4.0 + {linear}))), 'builtin', '') AS {SCORE_ROW})"
    fx = " ".join(f"WHEN '{code}' THEN {minor_to_reporting_factor(code)!r}" for code in FX_TABLE)
    return {
        "score_call": call,
        "feature_names": features,
        "feature_columns_ddl": ", ".join(f"{n} DOUBLE" for n in FEATURE_NAMES),
        "fx_usd_per_minor": f"(CASE currency {fx} ELSE CAST(NULL AS DOUBLE) END)",
    }
