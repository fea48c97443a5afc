"""How long each stateful operator of the risk job keeps its state, stated once and applied to the compiled plan.

Flink SQL has one job-wide idle-state retention (``table.exec.state.ttl``); STATE_TTL hints reach only
joins and group aggregations. The risk job needs very different retentions: event ids for the
de-duplication window, a loan's outcome for its whole life, a customer's behaviour for the features'
lookback. So the job is compiled to a plan (Flink's CompiledPlan JSON), every stateful node is matched
to one entry of ``STATE_RETENTION`` by its kind and key columns, and its retention is written into the
node: the ``state`` entries Flink's plan format has for that purpose, and the node's configuration for
OVER aggregates and process table functions (which read ``table.exec.state.ttl`` from it). A stateful
node that matches no entry stops the submission: no operator silently falls back to a job-wide value.
Stdlib only: it runs in the Flink client's Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any

TTL_KEY = "table.exec.state.ttl"
# Node kinds that keep keyed state which only a retention ever clears. Window aggregates are not here:
# the watermark clears their state when a window fires.
STATEFUL_KINDS = ("deduplicate", "group-aggregate", "over-aggregate", "rank", "join", "changelog-normalize",
                  "limit", "sort-limit", "process-table-function")


@dataclass(frozen=True)
class Retention:
    """One stateful operator of the job: what it holds, its key, and which retention (in seconds) it needs."""

    holds: str
    kind: str  # node kind, e.g. "deduplicate" for stream-exec-deduplicate_1
    key: tuple[str, ...]
    retention: str  # name of a value in the retentions mapping the job passes in
    why: str


STATE_RETENTION: tuple[Retention, ...] = (
    Retention("event ids seen and their copies (first_seen, one per input topic)", "process-table-function",
              ("event_id",), "dedup", "a repeated event id is dropped and counted while remembered"),
    Retention("scorings done (per loan, trigger kind, event time)", "deduplicate", ("trigger_kind", "loan_id", "event_time"),
              "dedup", "a lookup answered twice for the same trigger scores once"),
    Retention("loans scored, high and not high", "deduplicate", ("loan_id", "high_risk"), "loan",
              "a loan alerts once in its life (its first high score)"),
    Retention("behaviour windows per customer", "over-aggregate", ("customer_id",), "behaviour",
              "the features read the closing window and the two before it"),
    Retention("outcome per loan (worst delay, first default)", "over-aggregate", ("loan_id",), "loan",
              "a default must still count at the end of the loan's life and label horizon"),
)


class UnknownStatefulOperator(ValueError):
    """A stateful node of the plan that no STATE_RETENTION entry describes."""


def row_field_names(row_type: str) -> list[str]:
    """Top-level field names of a plan's ``ROW<`a` T, `b` ROW<...>>`` type string."""
    body = row_type.strip()
    if not body.startswith("ROW<") or not body.endswith(">"):
        raise ValueError(f"not a ROW type: {row_type[:80]}")
    body = body[4:-1]
    names, depth, i, start = [], 0, 0, 0
    parts: list[str] = []
    in_name = False
    while i < len(body):
        ch = body[i]
        if ch == "`":
            if in_name and body.startswith("``", i):
                i += 2
                continue
            in_name = not in_name
        elif not in_name:
            if ch in "<(":
                depth += 1
            elif ch in ">)":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(body[start:i])
                start = i + 1
        i += 1
    parts.append(body[start:])
    for part in parts:
        part = part.strip()
        if not part.startswith("`"):
            raise ValueError(f"unnamed field in ROW type: {part[:40]}")
        end = 1
        while True:
            end = part.index("`", end)
            if part.startswith("``", end):
                end += 2
                continue
            break
        names.append(part[1:end].replace("``", "`"))
    return names


def node_kind(node: dict[str, Any]) -> str:
    """``stream-exec-deduplicate_1`` -> ``deduplicate``."""
    kind = str(node.get("type", ""))
    return kind.removeprefix("stream-exec-").rsplit("_", 1)[0]


def output_names(node: dict[str, Any]) -> list[str]:
    """A node's output column names: its output type is a type string, or an object when it holds time attributes."""
    out = node.get("outputType", "")
    if isinstance(out, dict):
        return [str(f["name"]) for f in out.get("fields", [])]
    return row_field_names(str(out))


class _Plan:
    """The plan's nodes and their inputs, to name a column the planner renamed ``$1``."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.nodes = {n["id"]: n for n in plan.get("nodes", [])}
        self.inputs: dict[int, list[int]] = {}
        for edge in plan.get("edges", []):
            self.inputs.setdefault(edge["target"], []).append(edge["source"])

    def column_name(self, node_id: int, index: int, depth: int = 0) -> str:
        """The name of output column ``index``; a generated ``$n`` is traced back through projections."""
        node = self.nodes[node_id]
        name = output_names(node)[index]
        if not name.startswith("$") or depth > 50:
            return name
        if "projection" in node:
            expr = node["projection"][index]
            if expr.get("kind") == "FIELD_ACCESS":
                return str(expr["name"])
            if expr.get("kind") == "INPUT_REF" and len(self.inputs.get(node_id, [])) == 1:
                return self.column_name(self.inputs[node_id][0], expr["inputIndex"], depth + 1)
            return name
        upstream = self.inputs.get(node_id, [])
        if len(upstream) == 1 and len(output_names(self.nodes[upstream[0]])) == len(output_names(node)):
            return self.column_name(upstream[0], index, depth + 1)  # an exchange keeps its input's columns
        return name

    def key(self, node: dict[str, Any]) -> tuple[str, ...]:
        """The key columns of a stateful node, by name."""
        kind = node_kind(node)
        if kind == "deduplicate":
            positions = list(node["uniqueKeys"])
        elif kind == "group-aggregate":
            positions = list(node["grouping"])
        elif kind == "over-aggregate":
            positions = list(node["overSpec"]["partition"]["fields"])
        elif kind == "process-table-function":
            # A PTF's state is keyed by its table argument's PARTITION BY columns, named in the argument's type.
            arg = _table_argument(node)
            if arg is None:
                return ()
            names = [str(f["name"]) for f in arg["type"]["fields"]]
            return tuple(names[i] for i in arg["partitionKeys"])
        else:
            return ()
        upstream = self.inputs.get(node["id"], [])
        if len(upstream) != 1:
            return tuple(output_names(node)[i] for i in positions)
        return tuple(self.column_name(upstream[0], i) for i in positions)  # key positions index the input


def _table_argument(node: dict[str, Any]) -> dict[str, Any] | None:
    """The table argument of a process table function's call; None for a function called without one."""
    return next((op for op in node["functionCall"]["operands"] if op.get("kind") == "TABLE_ARG_CALL"), None)


def describe(node: dict[str, Any], key: tuple[str, ...]) -> str:
    """A node for an error message: its id, kind, key and Flink's description."""
    return f"node {node.get('id')} {node_kind(node)} key={list(key)}: {str(node.get('description'))[:160]}"


def _ttl(seconds: int) -> str:
    return f"{int(seconds) * 1000} ms"


def _matched(plan: dict[str, Any]) -> Iterator[tuple[dict[str, Any], Retention]]:
    """Every stateful node of ``plan`` with its STATE_RETENTION entry; a node without one is an error."""
    by_kind_key = {(r.kind, r.key): r for r in STATE_RETENTION}
    graph = _Plan(plan)
    for node in plan.get("nodes", []):
        kind = node_kind(node)
        if kind not in STATEFUL_KINDS:
            continue
        if kind == "process-table-function" and _table_argument(node) is None:
            continue  # state is kept per partition of a table argument: without one, there is none
        key = graph.key(node)
        entry = by_kind_key.get((kind, key))
        if entry is None:
            raise UnknownStatefulOperator(
                f"the job has a stateful operator with no stated retention ({describe(node, key)}); "
                "add it to STATE_RETENTION in jobs/state_retention.py")
        yield node, entry


def _row(node: dict[str, Any], entry: Retention, ttl: str) -> dict[str, Any]:
    return {"node": node.get("id"), "holds": entry.holds, "kind": entry.kind, "key": list(entry.key),
            "retention": entry.retention, "ttl": ttl}


def apply_retention(plan: dict[str, Any], retentions: dict[str, int]) -> list[dict[str, Any]]:
    """Write each stateful node's retention into ``plan`` (in place); returns one row per stateful node.

    ``retentions`` maps the names used in STATE_RETENTION ("dedup", "behaviour", "loan") to seconds.
    """
    rows = []
    for node, entry in _matched(plan):
        ttl = _ttl(retentions[entry.retention])
        if node.get("state"):
            for state in node["state"]:
                state["ttl"] = ttl
        else:
            node.setdefault("configuration", {})[TTL_KEY] = ttl
        rows.append(_row(node, entry, ttl))
    return rows


def retention_table(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stateful node of a plan ``apply_retention`` wrote: what it holds and the retention it got."""
    return [_row(node, entry, node["state"][0]["ttl"] if node.get("state") else
                 node.get("configuration", {}).get(TTL_KEY, "job-wide"))
            for node, entry in _matched(plan)]
