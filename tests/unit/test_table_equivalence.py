"""Temporary: the declared tables render the same columns as today's hand-written DDL."""

from __future__ import annotations

import re

from contracts.table_sql import jdbc_columns_ddl, lake_columns_ddl, postgres_ddl
from contracts.tables import LAKE_TABLES, SERVING_TABLES
from jobs.sqlfiles import render, split_statements
from loanrisk.settings import REPO_ROOT, Settings

CREATE = re.compile(r"CREATE (?:TEMPORARY )?TABLE (?:IF NOT EXISTS )?(\S+)\s*\((.*)\)", re.S | re.I)


def split_top(body: str) -> list[str]:
    parts, depth, buf = [], 0, []
    for ch in body:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf).strip())
    return [" ".join(p.split()) for p in parts if p.strip()]


def parse(stmt: str) -> tuple[str, list[tuple[str, str]], tuple[str, ...]]:
    m = CREATE.search(stmt)
    assert m, stmt
    name = m.group(1).split(".")[-1]
    start = stmt.index("(", m.start(2) - 1) + 1
    depth, end = 1, start
    while depth:
        depth += {"(": 1, ")": -1}.get(stmt[end], 0)
        end += 1
    body = stmt[start:end - 1]
    cols, key = [], ()
    for part in split_top(body):
        if part.upper().startswith("PRIMARY KEY"):
            key = tuple(k.strip(" `") for k in part[part.index("(") + 1:part.index(")")].split(","))
            continue
        name_, typ = part.split(" ", 1)
        typ = typ.upper().replace(" NOT ENFORCED", "")
        if " PRIMARY KEY" in typ:
            typ = typ.replace(" PRIMARY KEY", " NOT NULL")
            key = (name_,)
        cols.append((name_.strip("`"), typ))
    return name, cols, key


def hand_written(path: str) -> dict[str, tuple[list[tuple[str, str]], tuple[str, ...]]]:
    from stack.flink_client import sql_params
    text = render((REPO_ROOT / path).read_text(), sql_params(Settings()))
    out = {}
    for stmt in split_statements(text):
        if "CREATE" in stmt.upper() and "TABLE" in stmt.upper() and "(" in stmt:
            name, cols, key = parse(stmt)
            out[name] = (cols, key)
    return out


def test_lake_tables_render_today_s_columns() -> None:
    today = hand_written("sql/risk/40_lake_tables.sql")
    assert set(today) == {t.name for t in LAKE_TABLES}
    for t in LAKE_TABLES:
        _, cols, _ = parse(f"CREATE TABLE x.{t.name} (\n  {lake_columns_ddl(t)}\n) PARTITIONED BY (a)")
        assert cols == today[t.name][0], t.name


def test_jdbc_tables_render_today_s_columns_and_keys() -> None:
    today = hand_written("sql/risk/45_serving_tables.sql") | hand_written("sql/risk/35_repeated_events.sql")
    for t in SERVING_TABLES:
        _, cols, key = parse(f"CREATE TEMPORARY TABLE {t.flink_name} (\n  {jdbc_columns_ddl(t)}\n) WITH ()")
        assert (cols, key) == today[t.flink_name], t.flink_name


def test_postgres_tables_render_today_s_columns_keys_and_nullability() -> None:
    today = hand_written("sql/serving/postgres_tables.sql")
    assert set(today) == {t.name for t in SERVING_TABLES}
    for t in SERVING_TABLES:
        _, cols, key = parse(postgres_ddl(t).split(";")[0])
        want_cols, want_key = today[t.name]
        # A key column is NOT NULL whether written inline or not.
        norm = lambda cs: [(n, ty if ty.endswith("NOT NULL") or n not in key else ty + " NOT NULL")  # noqa: E731
                           for n, ty in cs]
        assert (norm(cols), key) == (norm(want_cols), want_key), t.name
    text = (REPO_ROOT / "sql/serving/postgres_tables.sql").read_text()
    rendered = ";\n".join(postgres_ddl(t) for t in SERVING_TABLES)
    for alter in re.findall(r"ALTER TABLE .*?DROP NOT NULL", text):
        assert alter in rendered
