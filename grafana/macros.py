"""Grafana's query macros and template variables expanded as Grafana 11 does, for running panel queries outside it.

Used by `riskctl dashboards render` and by the tests that run every panel query against the real
PostgreSQL and Prometheus. PostgreSQL macros (sqleng): ``$__timeFilter(col)`` -> ``col BETWEEN 'from'
AND 'to'``, ``$__timeFrom()``, ``$__timeTo()``, ``$__timeGroup(col, interval)`` -> ``floor(extract(epoch
from col)/s)*s`` and ``$__timeGroupAlias`` (the same ``AS "time"``), ``$__unixEpochFilter(col)``.
Prometheus: ``$__interval``, ``$__rate_interval`` (max(interval + scrape, 4 x scrape)), ``$__range``.
Variables: single values are inserted as they are; multi-value or include-All variables are quoted
SQL literals, and "All" with a custom all value inserts that value raw (as Grafana does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

# Grafana-like interval steps (seconds) that a computed $__interval is rounded up to.
NICE_INTERVALS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                  604800, 2592000)
DEFAULT_MAX_POINTS = 300
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# A variable name starts with a letter: "$1" in a PromQL label_replace is a regex group, which Grafana leaves
# alone because no variable has that name.
_VAR = re.compile(r"\$\{([A-Za-z_]\w*)(?::[\w]+)?\}|\$(?!__)([A-Za-z_]\w*)")


class MacroError(ValueError):
    """A macro or variable the expansion does not know (the query would fail in Grafana too)."""


def rfc3339(t: datetime) -> str:
    """A UTC timestamp as Grafana writes it into SQL."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_s(text: str) -> float:
    """Seconds of a Grafana duration ("30s", "5m", "1h", "250ms")."""
    m = re.fullmatch(r"\s*'?(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)'?\s*", text)
    if not m:
        raise MacroError(f"not a duration: {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest Grafana duration for ``seconds`` ("1m", "90s", "2h")."""
    s = int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{max(s, 1)}s"


def auto_interval(start: datetime, end: datetime, max_points: int = DEFAULT_MAX_POINTS,
                  min_interval_s: float = 1.0) -> float:
    """$__interval in seconds: the range over the panel's data points, rounded up to a nice step."""
    raw = max((end - start).total_seconds() / max_points, min_interval_s)
    return float(next((n for n in NICE_INTERVALS if n >= raw), NICE_INTERVALS[-1]))


def variable_values(dashboard: Mapping, selected: Mapping[str, Sequence[str] | str] | None = None) -> dict[str, str]:
    """Each template variable as it is inserted into a query: its default (All where it has one) unless selected."""
    out: dict[str, str] = {}
    for var in (dashboard.get("templating") or {}).get("list", []):
        name = var["name"]
        quoted = bool(var.get("multi") or var.get("includeAll"))
        choice = (selected or {}).get(name)
        if choice is None:
            current = (var.get("current") or {}).get("value")
            if var.get("includeAll") and current in (None, "$__all", ["$__all"]):
                if var.get("allValue") is None:
                    raise MacroError(f"variable {name} has no custom all value to render 'All' with")
                out[name] = var["allValue"]
                continue
            choice = current if current is not None else (var.get("query") or "").split(",")[0].split(":")[-1].strip()
        values = [choice] if isinstance(choice, str) else list(choice)
        out[name] = ",".join(sql_literal(v) for v in values) if quoted else values[0].replace("'", "''")
    return out


def sql_literal(value: str) -> str:
    """A quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def substitute_variables(text: str, values: Mapping[str, str]) -> str:
    """Replace $name and ${name} (never the $__ macros); unknown variables raise."""
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise MacroError(f"variable ${name} is not defined by the dashboard")
        return values[name]
    return _VAR.sub(repl, text)


def used_variables(text: str) -> set[str]:
    """Names of the template variables a query refers to."""
    return {m.group(1) or m.group(2) for m in _VAR.finditer(text)}


def expand_sql(sql: str, start: datetime, end: datetime, values: Mapping[str, str],
               interval_s: float | None = None) -> str:
    """A PostgreSQL panel query with Grafana's macros and variables expanded for [start, end]."""
    interval_s = interval_s or auto_interval(start, end)
    frm, to = sql_literal(rfc3339(start)), sql_literal(rfc3339(end))

    def group(m: re.Match[str], alias: bool) -> str:
        arg = m.group(2).strip()
        seconds = interval_s if arg in ("$__interval", "'$__interval'") else duration_s(arg)
        expr = f"floor(extract(epoch from {m.group(1).strip()})/{seconds:g})*{seconds:g}"
        return expr + (' AS "time"' if alias else "")

    out = re.sub(r"\$__timeGroupAlias\(([^,()]+),([^()]+)\)", lambda m: group(m, True), sql)
    out = re.sub(r"\$__timeGroup\(([^,()]+),([^()]+)\)", lambda m: group(m, False), out)
    out = re.sub(r"\$__timeFilter\(([^()]+)\)", lambda m: f"{m.group(1).strip()} BETWEEN {frm} AND {to}", out)
    out = re.sub(r"\$__unixEpochFilter\(([^()]+)\)",
                 lambda m: f"{m.group(1).strip()} >= {int(start.timestamp())} AND "
                           f"{m.group(1).strip()} <= {int(end.timestamp())}", out)
    out = out.replace("$__timeFrom()", frm).replace("$__timeTo()", to)
    out = out.replace("$__interval_ms", str(int(interval_s * 1000))).replace("$__interval", format_duration(interval_s))
    if "$__" in out:
        raise MacroError(f"unknown macro in: {out[out.index('$__'):][:40]}")
    return substitute_variables(out, values)


def expand_promql(expr: str, start: datetime, end: datetime, step_s: float, scrape_interval_s: float,
                  values: Mapping[str, str]) -> str:
    """A PromQL panel query with $__interval, $__rate_interval, $__range and variables expanded."""
    rate = max(step_s + scrape_interval_s, 4 * scrape_interval_s)
    out = (expr.replace("$__rate_interval", format_duration(rate))
           .replace("$__interval_ms", str(int(step_s * 1000))).replace("$__interval", format_duration(step_s))
           .replace("$__range", format_duration((end - start).total_seconds())))
    if "$__" in out:
        raise MacroError(f"unknown macro in: {out[out.index('$__'):][:40]}")
    return substitute_variables(out, values)
