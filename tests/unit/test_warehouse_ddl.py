"""Snowflake DDL: rendered from the lake's table declarations, current on disk, and the roles' grants separated."""

from __future__ import annotations

import re

from loanrisk.settings import Settings
from warehouse.ddl import SCHEMA_SQL, TABLES, create_table_sql, schema_script

GRANT = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<target>.+?) TO ROLE (?P<role>\w+);$", re.M)
WRITE_PRIVILEGES = {"INSERT", "UPDATE", "DELETE", "TRUNCATE", "OWNERSHIP", "ALL", "ALL PRIVILEGES", "CREATE TABLE",
                    "MODIFY", "CREATE SCHEMA", "CREATE STAGE", "APPLY", "MANAGE GRANTS"}


def test_every_lake_column_has_a_snowflake_column_of_the_matching_type_in_order() -> None:
    for t in TABLES:
        want = ",\n  ".join(f'"{c.name.upper()}" {c.snowflake_type}' for c in t.lake.columns)
        assert f"(\n  {want}\n)" in create_table_sql(t), t.name


def test_the_scores_table_carries_the_feature_columns() -> None:
    from contracts.features import FEATURE_NAMES
    scores = next(t for t in TABLES if t.lake_table == "scores")
    assert set(FEATURE_NAMES) <= {c.name for c in scores.columns}


def test_keys_and_clustering_columns_are_columns_of_their_table() -> None:
    for t in TABLES:
        names = {c.name for c in t.columns}
        assert t.key and set(t.key) <= names and set(t.cluster_by) <= names, t.name


def test_schema_file_is_the_generated_script() -> None:
    regenerate = "run `python -m warehouse.ddl > sql/warehouse/00_schema.sql`"
    assert SCHEMA_SQL.read_text() == schema_script(Settings()), regenerate


def test_analyst_role_is_granted_reading_only() -> None:
    sf = Settings().snowflake
    grants = [m.groupdict() for m in GRANT.finditer(SCHEMA_SQL.read_text())]
    analyst = [g for g in grants if g["role"] == sf.analyst_role]
    privileges = {p.strip() for g in analyst for p in g["privs"].split(",")}
    assert privileges == {"USAGE", "SELECT"}
    assert any(g["target"].startswith("FUTURE TABLES") and g["privs"] == "SELECT" for g in analyst)
    assert not privileges & WRITE_PRIVILEGES
    assert not re.search(rf"GRANT ROLE \w+ TO ROLE {sf.analyst_role}", SCHEMA_SQL.read_text())


def test_loader_role_can_write_every_table_including_the_control_table() -> None:
    sf = Settings().snowflake
    grants = [m.groupdict() for m in GRANT.finditer(SCHEMA_SQL.read_text())]
    table_grants = [g for g in grants if g["role"] == sf.role and "TABLES IN SCHEMA" in g["target"]]
    for scope in ("ALL TABLES", "FUTURE TABLES"):
        privs = {p.strip() for g in table_grants if g["target"].startswith(scope) for p in g["privs"].split(",")}
        assert {"SELECT", "INSERT", "UPDATE", "DELETE"} <= privs, scope
    assert "LOADER_CONTROL" in SCHEMA_SQL.read_text()


def test_riskctl_warehouse_ddl_prints_the_schema_script() -> None:
    from click.testing import CliRunner

    from riskctl.commands.warehouse import warehouse
    result = CliRunner().invoke(warehouse, ["ddl"])
    assert result.exit_code == 0 and result.output == schema_script(Settings())
