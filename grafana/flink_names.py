"""Readable names for the risk job's Flink operators and tasks in PromQL legends.

Flink names the operators of a SQL plan after the plan node and its id (``Calc[11]``,
``Sink: pg_risk_by_window[100]``, ``dead_letter_topic[48]: Writer``) and a task after its chain of
operators; its Prometheus reporter turns every character outside ``[a-zA-Z0-9:_]`` into ``_``, so the
labels read ``Calc_11_`` and ``Deduplicate_81_____PythonCalc_82______Calc_83_____IcebergStreamWriter__...``.
The ids change whenever a statement does and Flink SQL has no way to name an operator, so the dashboards
map the labels in the query (``label_replace``): sources and sinks by their table, a task by what it
writes, scores or reads, and any other task by its first stateful operator ("Deduplicate 25", or
"de-duplicate events 12" for the job's first_seen calls).

Rules are (regex, replacement) pairs applied in order, a later match overwriting an earlier one; the regex
must match the whole label value (Prometheus anchors it) and ``$1`` inserts its first group.
"""

from __future__ import annotations

from collections.abc import Sequence

Rule = tuple[str, str]

# Operators that read from Kafka (operator_name selector) and the table each reads.
SOURCE_OPERATORS = "Source:_.*"
SOURCE_RULES: tuple[Rule, ...] = (("Source:_(?:kafka_)?(.+)_[0-9]+_", "$1"),)

# Operators that write out of the job: JDBC sinks (Sink: <table>[id]), Kafka sinks (<table>[id]: Writer)
# and Iceberg's writers, which Flink names alike for every lake table.
SINK_OPERATORS = "Sink:_.*|.+_[0-9]+_:_Writer|IcebergStreamWriter"
SINK_RULES: tuple[Rule, ...] = (
    ("Sink:_(?:pg_)?(.+)_[0-9]+_", "$1 (PostgreSQL)"),
    ("(.+)_[0-9]+_:_Writer", "$1 (Kafka)"),
    ("IcebergStreamWriter", "lake tables (Iceberg)"),
)

# Tasks: the whole chain name first (never an empty legend), then ever more telling names.
TASK_RULES: tuple[Rule, ...] = (
    ("(.*)", "$1"),
    ("(?:Calc_[0-9]+_+)?([A-Za-z]+)_([0-9]+)_.*", "$1 $2"),
    ("ProcessTableFunction_([0-9]+)_.*", "de-duplicate events $1"),  # first_seen, sql/risk/40_valid_events.sql
    ("IcebergStreamWriter", "write lake tables (Iceberg)"),
    (".*Sink:_(?:pg_)?(.+?)_[0-9]+_.*", "write $1 (PostgreSQL)"),
    ("(?:.*?_)??([a-z][a-z0-9_]*?)_[0-9]+_:_Writer.*", "write $1 (Kafka)"),
    ("IcebergFilesCommitter_+IcebergSink_(.+):_Writer", "commit $1 (Iceberg)"),
    (".*PythonCalc_[0-9]+_.*", "score loans (Python UDF)"),
    ("Source:_(?:kafka_)?(.+?)_[0-9]+_.*", "read $1 (Kafka)"),
)


def relabel(expr: str, target: str, source: str, rules: Sequence[Rule]) -> str:
    """``expr`` wrapped in one ``label_replace`` per rule, writing ``target`` from ``source``."""
    for regex, replacement in rules:
        expr = f'label_replace({expr}, "{target}", "{replacement}", "{source}", "{regex}")'
    return expr
