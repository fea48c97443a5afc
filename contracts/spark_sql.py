"""Spark SQL rendered from the contracts: the Spark peer's validation, typed fields, pseudonyms and Iceberg DDL.

The Spark Structured Streaming peer of the benchmarks (bench/spark_peer.py) does the Flink job's floor with
built-in Spark SQL expressions only, so it is measured as an engineer would write it, without a Python
function per row. Each rule of contracts/validate.py (the order the Java ``parse_event`` follows) becomes a
branch of one CASE, per contract, over columns of a few projections:

1. ``payload`` (the Kafka value, invalid UTF-8 replaced as Flink's raw format decodes it) and ``doc``, the
   payload parsed as a Variant inside ``[`` ``]``: a strict JSON text with nothing after its one value parses
   into a one-element array, so trailing text is ``invalid_json`` as for Jackson's ``parse_event``;
2. per contract field name, its raw Variant (``r_<name>``, read only for the topics whose contract has it);
3. its JSON type (``j_<name>``, ``schema_of_variant``: 'BIGINT' for an integer that fits a long, 'DECIMAL(p,s)'
   or 'DOUBLE' for other numbers, 'VOID' for a JSON null) and its typed value (``t_<name>``);
4. the reason (the first broken rule, NULL when valid) and, per contract, a struct of its typed fields.

What cannot be said the same way, and how it is closed: Variant parsing fails on a repeated key unless
``spark.sql.variant.allowDuplicateKeys`` is on (then the last wins, as in ``parse_event``): SPARK_CONF sets it.
Decimal numbers are turned into doubles by Spark's decimal cast, not by Jackson's text parse (the same double
for any decimal of up to 15 significant digits). The rest, rule for rule, is checked against the Java
function and the Python reference by tests/unit/test_spark_sql.py on the same corpus of good and bad events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from contracts.events import DEAD_LETTER, INPUT_EVENTS
from contracts.heartbeat import HEARTBEAT_CHARS, HEARTBEAT_PATTERN
from contracts.schema import EventContract, Field
from contracts.table_sql import CREATE_ONLY_PROPERTIES, lake_table_properties
from contracts.tables import DEAD_LETTERS, LakeTable, lake_table
from contracts.validate import FUTURE_EVENT_TIME, INVALID_JSON, MAX_PAYLOAD_CHARS, PAST_EVENT_TIME, PAST_LIMIT_MS, TOO_LARGE

SPARK_TYPES = {"string": "STRING", "int": "INT", "long": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN",
               "date": "DATE", "timestamp": "TIMESTAMP"}
# Session settings the expressions rely on: repeated keys take the last value (parse_event's reading), and
# event dates are UTC days (the Flink job's session time zone).
SPARK_CONF = {"spark.sql.variant.allowDuplicateKeys": "true", "spark.sql.session.timeZone": "UTC"}
# The Java validator's patterns (EventValidator.DATE, TIMESTAMP), matched whole: `\z`, not `$`, which would let a
# trailing line break through (Spark's RLIKE finds, as Java's Matcher.find does).
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\z"
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})\z"
_NUMBER_TYPES = "('BIGINT', 'DOUBLE', 'FLOAT')"
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
HMAC_BLOCK = 64  # SHA-256's block size in bytes


def literal(text: str) -> str:
    """A Spark SQL string literal (backslashes and quotes escaped: Spark unescapes its literals)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quoted(name: str) -> str:
    """A Spark SQL identifier."""
    return f"`{name}`"


def _fields_by_name(contracts: Sequence[EventContract]) -> dict[str, Field]:
    """Each field name of the contracts once, with its declaration; a name must mean one type in all of them."""
    out: dict[str, Field] = {}
    for c in contracts:
        for f in c.fields:
            seen = out.setdefault(f.name, f)
            if seen.type != f.type:
                raise ValueError(f"{f.name} is a {seen.type} in one contract and a {f.type} in {c.name}: the Spark "
                                 "peer reads each name once")
    return out


def _string_of(raw: str) -> str:
    return f"try_variant_get({raw}, '$', 'string')"


def typed_value(f: Field) -> str:
    """The field's value in its Spark type from its raw Variant ``r_<name>``; NULL when absent or of another
    JSON type (the type rule then decides, from ``j_<name>``)."""
    raw = quoted(f"r_{f.name}")
    if f.type == "date":
        s = _string_of(raw)
        return (f"CASE WHEN {s} RLIKE {literal(DATE_PATTERN)} AND substr({s}, 1, 4) <> '0000' "
                f"THEN try_cast({s} AS DATE) END")
    if f.type == "timestamp":
        # Year 1 or later on the wall clock it is written in (the Java parser's check, before the offset).
        s = _string_of(raw)
        return (f"CASE WHEN {s} RLIKE {literal(TIMESTAMP_PATTERN)} AND substr({s}, 1, 4) <> '0000' "
                f"THEN try_cast({s} AS TIMESTAMP) END")
    return f"try_variant_get({raw}, '$', '{SPARK_TYPES[f.type].lower()}')"


def type_ok(f: Field) -> str:
    """TRUE when the present value has the field's JSON type (and width), as EventValidator.typed decides."""
    j, t = quoted(f"j_{f.name}"), quoted(f"t_{f.name}")
    if f.type == "string":
        return f"{j} = 'STRING'"
    if f.type == "int":  # an integer token; the int cast fails (NULL) outside the int range
        return f"({j} = 'BIGINT' AND {t} IS NOT NULL)"
    if f.type == "long":  # an integer that does not fit a long parses as a DECIMAL(p,0) or DOUBLE
        return f"{j} = 'BIGINT'"
    if f.type == "double":
        return f"({j} IN {_NUMBER_TYPES} OR {j} LIKE 'DECIMAL(%')"
    if f.type == "boolean":
        return f"{j} = 'BOOLEAN'"
    return f"({j} = 'STRING' AND {t} IS NOT NULL)"  # date, timestamp: a string that parses


def range_broken(f: Field) -> str | None:
    """TRUE when a typed numeric value is outside the field's bounds or not finite; None when nothing to check."""
    if f.type not in ("int", "long", "double"):
        return None
    t = quoted(f"t_{f.name}")
    checks = []
    if f.type == "double":
        checks.append(f"isnan({t}) OR abs({t}) = double('infinity')")
    if f.minimum is not None:
        checks.append(f"CAST({t} AS DOUBLE) < {float(f.minimum)!r}")
    if f.maximum is not None:
        checks.append(f"CAST({t} AS DOUBLE) > {float(f.maximum)!r}")
    return " OR ".join(checks) or None


def _present(f: Field) -> str:
    return f"coalesce({quoted(f'j_{f.name}')}, 'VOID') <> 'VOID'"


def reason_case(c: EventContract, future_tolerance_ms: int) -> str:
    """The first rule a message of contract ``c`` breaks (NULL when valid), in contracts/validate.py's order."""
    rules: list[tuple[str, str]] = [("payload IS NULL", INVALID_JSON),
                                    (f"char_length(payload) > {MAX_PAYLOAD_CHARS}", TOO_LARGE),
                                    (f"NOT {JSON_OBJECT}", INVALID_JSON)]
    rules += [(f"NOT {_present(f)}", f"missing:{f.name}") for f in c.fields if not f.nullable]
    rules += [(f"{_present(f)} AND NOT coalesce({type_ok(f)}, false)", f"type:{f.name}") for f in c.fields]
    for f in c.fields:
        if f.choices is not None:
            options = ", ".join(literal(x) for x in f.choices)
            rules.append((f"CAST({quoted(f't_{f.name}')} AS STRING) NOT IN ({options})", f"choice:{f.name}"))
    for f in c.fields:
        broken = range_broken(f)
        if broken is not None:
            rules.append((f"{quoted(f't_{f.name}')} IS NOT NULL AND ({broken})", f"range:{f.name}"))
    et = quoted(f"t_{c.event_time_field}")
    # Event times are microseconds in Spark, as the Java and Python parsers truncate them: the limit is compared
    # to the microsecond, and the past limit on the millisecond the Java function floors to.
    rules.append((f"{et} > timestamp_millis(unix_millis(ingested_at) + {future_tolerance_ms})", FUTURE_EVENT_TIME))
    rules.append((f"unix_micros({et}) < {PAST_LIMIT_MS * 1000}", PAST_EVENT_TIME))
    body = "\n    ".join(f"WHEN {cond} THEN {literal(reason)}" for cond, reason in rules)
    return f"CASE\n    {body}\n  END"


# The payload parsed inside brackets is a one-element array whose element is an object exactly when the text is
# one JSON object and nothing else (whitespace aside): no second element, and an opening brace first.
JSON_OBJECT = ("(doc IS NOT NULL AND variant_get(doc, '$[1]') IS NULL "
               "AND startswith(trim(LEADING ' \\t\\n\\r' FROM payload), '{'))")


def masked_payload(column: str = "payload") -> str:
    """A dead letter's stored payload in the Spark peer: ``<text:N>``, N its characters. The Flink job's
    ``redact_payload`` (jvm/functions Redactor) keeps the contract's shape and pseudonymises PII fields, field by
    field; that walk is not rendered here (docs/PERFORMANCE.md: the benchmark's backlogs have no dead letters)."""
    return f"concat('<text:', CAST(char_length({column}) AS STRING), '>')"


def decoded_payload(value: str = "value") -> str:
    """The Kafka value as text: invalid UTF-8 replaced by U+FFFD, as Java decodes it for Flink's raw format."""
    return f"make_valid_utf8(CAST({value} AS STRING))"


def not_heartbeat(column: str = "payload") -> str:
    """FALSE for a watermark heartbeat (contracts/heartbeat.py: length first, then the pattern, found as Flink's
    REGEXP finds it); TRUE otherwise, NULL included."""
    return (f"NOT coalesce(char_length({column}) = {HEARTBEAT_CHARS} AND {column} RLIKE {literal(HEARTBEAT_PATTERN)}, "
            "false)")


def parsed_document() -> str:
    """``doc``: the bracketed payload as a Variant, NULL when it does not parse or is too large to be parsed."""
    return f"CASE WHEN char_length(payload) <= {MAX_PAYLOAD_CHARS} THEN try_parse_json(concat('[', payload, ']')) END"


def raw_fields(topics: Mapping[str, str], contracts: Sequence[EventContract] = INPUT_EVENTS) -> list[str]:
    """``r_<name>`` per field name: its raw Variant, read only where the message's topic's contract has the field.

    ``topics`` maps a contract name to the topic its messages come from (the benchmark's topics differ from the
    contracts' defaults)."""
    out = []
    for name in _fields_by_name(contracts):
        having = [literal(topics[c.name]) for c in contracts if name in c.names]
        where = "" if len(having) == len(contracts) else f"topic IN ({', '.join(having)}) AND "
        out.append(f"CASE WHEN {where}doc IS NOT NULL THEN variant_get(doc, '$[0].{name}') END AS {quoted('r_' + name)}")
    return out


def typed_fields(contracts: Sequence[EventContract] = INPUT_EVENTS) -> list[str]:
    """``j_<name>`` (JSON type) and ``t_<name>`` (typed value) per field name."""
    out = []
    for name, f in _fields_by_name(contracts).items():
        out.append(f"schema_of_variant({quoted('r_' + name)}) AS {quoted('j_' + name)}")
        out.append(f"{typed_value(f)} AS {quoted('t_' + name)}")
    return out


def checked_columns(topics: Mapping[str, str], future_tolerance_ms: int,
                    contracts: Sequence[EventContract] = INPUT_EVENTS) -> list[str]:
    """``reason`` by the message's topic, the envelope's ``event_id`` and ``event_time``, and per contract a struct
    of its typed fields (NULL for messages of the other topics)."""
    branches = " ".join(f"WHEN {literal(topics[c.name])} THEN {reason_case(c, future_tolerance_ms)}"
                        for c in contracts)
    out = [f"CASE topic {branches} END AS reason"]
    shared = {c.event_time_field for c in contracts} | {"event_id"}
    out += [f"{quoted('t_' + name)} AS {quoted(name)}" for name in sorted(shared)]
    for c in contracts:
        fields = ", ".join(f"{literal(f.name)}, {quoted('t_' + f.name)}" for f in c.fields)
        out.append(f"CASE WHEN topic = {literal(topics[c.name])} THEN named_struct({fields}) END AS {quoted(c.name)}")
    return out


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded keys (RFC 2104): the key (hashed when longer than a block) XOR 0x36
    and XOR 0x5c, so that HMAC(key, m) = SHA256(outer + SHA256(inner + m))."""
    if len(key) > HMAC_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(HMAC_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def pseudonym(column: str, key_id: str, key: bytes) -> str:
    """The pseudonym of a string column as the job's ``pii_hash`` makes it: ``<key id>:<hex HMAC-SHA256 of the
    UTF-8 value>`` (NULL for NULL), with built-in hashes over the padded keys. The padded keys are literals in
    the plan: the Spark peer's driver reads them from the key file, as the TaskManagers do."""
    inner, outer = hmac_pads(key)
    digest = f"sha2(concat(X'{inner.hex()}', CAST({column} AS BINARY)), 256)"
    return f"CASE WHEN {column} IS NOT NULL THEN concat({literal(key_id + ':')}, sha2(concat(X'{outer.hex()}', " \
           f"unhex({digest})), 256)) END"


def raw_select(table: LakeTable, contract: EventContract, struct: str, key_id: str, key: bytes) -> list[str]:
    """The SELECT list writing raw table ``table`` from the contract's struct column (``struct``) and the
    message's ``ingested_at``, in the table's column order; PII as pseudonyms."""
    fields = {f.name: f for f in contract.fields}
    out = []
    for col in table.columns:
        src = col.written_from
        expr = f"{quoted(struct)}.{quoted(src)}" if src in fields else quoted(src)
        if src in fields and fields[src].pii:
            expr = pseudonym(expr, key_id, key)
        if col.source is not None or col.type == "timestamp":
            expr = f"CAST({expr} AS {SPARK_TYPES[col.type]})"
        out.append(f"{expr} AS {quoted(col.name)}")
    return out


def dead_letter_select(payload: str) -> list[str]:
    """The SELECT list writing the dead-letters table from a checked message: ``payload`` is the expression of
    the stored payload (sql/risk/50_dead_letters.sql stores it redacted)."""
    exprs = {
        "dlq_id": "sha2(concat(topic, ':', CAST(partition AS STRING), ':', CAST(offset AS STRING)), 256)",
        "source_topic": "topic", "source_partition": "partition", "source_offset": "offset", "reason": "reason",
        "payload": payload, "payload_bytes": "char_length(coalesce(payload, ''))",
        "received_at": "ingested_at", "received_date": "CAST(ingested_at AS DATE)",
    }
    missing = [c.name for c in DEAD_LETTERS.columns if c.name not in exprs]
    if missing or [f.name for f in DEAD_LETTER.fields] != [c.name for c in DEAD_LETTERS.columns][:len(DEAD_LETTER.fields)]:
        raise ValueError(f"the dead-letters table changed ({missing}): render its new columns here")
    return [f"CAST({exprs[c.name]} AS {SPARK_TYPES[c.type]}) AS {quoted(c.name)}" for c in DEAD_LETTERS.columns]


def create_table(catalog: str, namespace: str, table: LakeTable) -> str:
    """CREATE TABLE IF NOT EXISTS for the lake table in Spark, with the properties the Flink job's DDL gives it."""
    cols = ",\n  ".join(f"{quoted(c.name)} {SPARK_TYPES[c.type]}" for c in table.columns)
    props = {**CREATE_ONLY_PROPERTIES, **lake_table_properties(table)}
    options = ", ".join(f"{literal(k)} = {literal(v)}" for k, v in props.items())
    return (f"CREATE TABLE IF NOT EXISTS {catalog}.{namespace}.{table.name} (\n  {cols}\n) USING iceberg "
            f"PARTITIONED BY ({quoted(table.partitioned_by)}) TBLPROPERTIES ({options})")


def raw_table_of(contract: EventContract) -> LakeTable:
    """The raw lake table of an input contract."""
    names = {"loan_application": "raw_loan_applications", "transaction": "raw_transactions",
             "repayment": "raw_repayments"}
    return lake_table(names[contract.name])
