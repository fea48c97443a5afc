"""Per-operator state retention written into a compiled plan (jobs/state_retention.py)."""

from __future__ import annotations

import pytest

from jobs.state_retention import STATE_RETENTION, UnknownStatefulOperator, apply_retention, row_field_names

RETENTIONS = {"dedup": 75, "behaviour": 270, "loan": 6480}


def _dedup(node_id: int, names: list[str], keys: list[int]) -> dict:
    fields = ", ".join(f"`{n}` VARCHAR(2147483647)" for n in names)
    return {"id": node_id, "type": "stream-exec-deduplicate_1", "uniqueKeys": keys, "outputType": f"ROW<{fields}>",
            "state": [{"index": 0, "ttl": "0 ms", "name": "deduplicateState"}], "description": "Deduplicate(...)"}


def _first_seen(node_id: int, names: list[str], keys: list[int]) -> dict:
    """A process table function node as Flink 2.1 writes it: its key is the table argument's PARTITION BY."""
    fields = [{"name": n, "fieldType": "VARCHAR(2147483647)"} for n in names]
    arg = {"kind": "TABLE_ARG_CALL", "inputIndex": 0, "partitionKeys": keys, "orderKeys": [],
           "type": {"type": "ROW", "nullable": False, "fields": fields}}
    uid = {"kind": "LITERAL", "value": "first-seen-x", "type": "CHAR(12) NOT NULL"}
    return {"id": node_id, "type": "stream-exec-process-table-function_1", "uid": "first-seen-x",
            "functionCall": {"kind": "CALL", "systemName": "first_seen", "operands": [arg, uid]},
            "outputType": {"type": "ROW", "fields": [*fields, {"name": "seen_before", "fieldType": "BIGINT"}]},
            "description": "ProcessTableFunction(...)"}


def _over_after_projection(calc_id: int, over_id: int) -> list[dict]:
    """A calc that renames e.loan_id to $1, an exchange, and an OVER partitioned by $1 (as the planner writes it)."""
    calc = {"id": calc_id, "type": "stream-exec-calc_1",
            "projection": [{"kind": "INPUT_REF", "inputIndex": 0}, {"kind": "FIELD_ACCESS", "name": "loan_id"}],
            "outputType": {"type": "ROW", "fields": [{"name": "event_time", "fieldType": "TIMESTAMP(3)"},
                                                      {"name": "$1", "fieldType": "VARCHAR(2147483647)"}]}}
    exchange = {"id": calc_id + 1, "type": "stream-exec-exchange_1", "outputType": calc["outputType"]}
    over = {"id": over_id, "type": "stream-exec-over-aggregate_1", "overSpec": {"partition": {"fields": [1]}},
            "outputType": {"type": "ROW", "fields": [*calc["outputType"]["fields"],
                                                     {"name": "w0$o0", "fieldType": "INT"}]}}
    return [calc, exchange, over]


def test_a_row_type_with_nested_rows_and_quoted_names_gives_its_top_level_names() -> None:
    assert row_field_names("ROW<`event_id` VARCHAR(2147483647), `e` ROW<`a` INT, `b` DECIMAL(10, 2)>, "
                           "`odd``name` INT>") == ["event_id", "e", "odd`name"]


def test_each_known_operator_gets_its_own_retention_in_the_plan() -> None:
    nodes = [_first_seen(1, ["event_id", "e", "event_time"], [0]), _dedup(2, ["loan_id", "x", "high_risk"], [0, 2]),
             *_over_after_projection(3, 5)]
    plan = {"nodes": nodes, "edges": [{"source": 3, "target": 4}, {"source": 4, "target": 5}]}
    rows = apply_retention(plan, RETENTIONS)
    assert nodes[0]["configuration"]["table.exec.state.ttl"] == "75000 ms"  # event ids: the de-duplication window
    assert nodes[1]["state"][0]["ttl"] == "6480000 ms"  # alert once per loan: the loan's life
    assert nodes[4]["configuration"]["table.exec.state.ttl"] == "6480000 ms"  # the outcome, found through $1
    assert [r["retention"] for r in rows] == ["dedup", "loan", "loan"]


def test_a_stateful_operator_nobody_stated_a_retention_for_stops_the_submission() -> None:
    plan = {"nodes": [_dedup(7, ["account_id", "v"], [0])], "edges": []}
    with pytest.raises(UnknownStatefulOperator, match=r"node 7 deduplicate key=\['account_id'\]"):
        apply_retention(plan, RETENTIONS)


def test_every_declared_retention_names_a_value_the_job_passes() -> None:
    from loanrisk.settings import Settings
    from jobs.params import state_retention
    values = state_retention(Settings())
    assert {r.retention for r in STATE_RETENTION} <= set(values)
    assert values["loan"] > values["behaviour"] > values["dedup"] > 0


def test_a_process_table_function_keyed_by_other_columns_has_no_stated_retention() -> None:
    plan = {"nodes": [_first_seen(9, ["account_id", "event_id"], [0])], "edges": []}
    with pytest.raises(UnknownStatefulOperator, match=r"node 9 process-table-function key=\['account_id'\]"):
        apply_retention(plan, RETENTIONS)


def test_a_process_table_function_without_a_table_argument_holds_no_state_and_needs_no_retention() -> None:
    node = _first_seen(4, ["event_id"], [0])
    node["functionCall"]["operands"] = node["functionCall"]["operands"][1:]  # only the scalar argument
    assert apply_retention({"nodes": [node], "edges": []}, RETENTIONS) == []
    assert "configuration" not in node
