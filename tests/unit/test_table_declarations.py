"""Lake and serving tables are declared once (contracts/tables.py); every DDL and INSERT list follows them."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from contracts.attributes import APPLICATION_ATTRIBUTES
from contracts.events import DEAD_LETTER, INPUT_EVENTS
from contracts.features import ATTRIBUTE_FEATURE_NAMES, FEATURE_NAMES
from contracts.table_sql import (jdbc_columns_ddl, jdbc_select, lake_columns_ddl, lake_select, postgres_ddl,
                                 table_fragments)
from contracts.tables import (LAKE_TABLES, RISK_BY_WINDOW, SCORES, SERVING_TABLES, Column, LakeTable,
                              ServingTable, lake_history)
from loanrisk.settings import REPO_ROOT
from warehouse.ddl import TABLES, create_table_sql, table

# Columns of the tables already on disk (Iceberg, the job's JDBC tables, PostgreSQL), taken from the DDL
# that was written by hand before the declarations: existing tables must keep working, so a change to
# them is a schema migration and updates this file on purpose.
# The application attributes' columns (contracts/attributes.py) and the columns declared added_in_place (the
# scores' role) are the one change made for you: they trail the columns on disk, and are added to an existing
# table in place.
ON_DISK = json.loads((REPO_ROOT / "tests" / "unit" / "tables_on_disk.json").read_text())


def before_attributes(columns: tuple[Column, ...]) -> tuple[Column, ...]:
    """The columns in front of the trailing columns added in place (attributes, the scores' role): those of the
    table on disk."""
    names = {a.name for a in APPLICATION_ATTRIBUTES}
    return tuple(c for c in columns if c.name not in names and not c.added_in_place)


def jdbc_type(c: Column) -> str:
    """The type the Flink JDBC table gives the column."""
    return "TIMESTAMP(3)" if c.type == "timestamp" else c.flink_type


def postgres_column(c: Column) -> str:
    """The column's PostgreSQL type with its constraints, as tables_on_disk.json writes it."""
    return " ".join([c.postgres_type] + ([] if c.nullable else ["NOT NULL"])
                    + ([f"DEFAULT {c.pg_default.upper()}"] if c.pg_default else []))


def test_lake_tables_keep_the_columns_on_disk() -> None:
    assert {t.name: [[c.name, c.flink_type] for c in before_attributes(t.columns)] for t in LAKE_TABLES} == \
        ON_DISK["iceberg"]


def test_jdbc_tables_keep_the_columns_and_keys_of_the_job() -> None:
    declared = {t.jdbc_table: {"columns": [[c.name, jdbc_type(c)] for c in before_attributes(t.sink_columns)],
                               "primary_key": list(t.primary_key)} for t in SERVING_TABLES}
    assert declared == ON_DISK["flink_jdbc"]


def test_postgres_tables_keep_their_columns_keys_and_nullability() -> None:
    declared = {t.name: {"columns": [[c.name, postgres_column(c)] for c in before_attributes(t.columns)],
                         "primary_key": list(t.primary_key)} for t in SERVING_TABLES}
    assert declared == ON_DISK["postgres"]
    assert {t.name: list(t.relaxed) for t in SERVING_TABLES if t.relaxed} == ON_DISK["postgres_dropped_not_null"]


def test_a_relaxed_column_is_nullable_and_migrated_after_its_table() -> None:
    for t in SERVING_TABLES:
        ddl = postgres_ddl(t)
        for name in t.relaxed:
            assert next(c for c in t.columns if c.name == name).nullable, (t.name, name)
            assert ddl.index(f"ALTER TABLE {t.name} ALTER COLUMN {name} DROP NOT NULL") > ddl.index("CREATE TABLE")


def test_raw_and_dead_letter_tables_carry_every_contract_field_in_order() -> None:
    lake = {t.name: t for t in LAKE_TABLES}
    for contract in INPUT_EVENTS:
        raw = next(t for t in LAKE_TABLES if t.name == f"raw_{contract.topic.replace('-', '_')}")
        fields = [(c.name, c.type) for c in raw.columns if c.name not in ("ingested_at", "event_date")]
        assert fields == [(f.name, f.type) for f in contract.fields]
    assert lake["dead_letters"].names[:-1] == DEAD_LETTER.names


def test_the_scores_table_holds_the_features_in_contract_order_the_attributes_last() -> None:
    formula = [n for n in FEATURE_NAMES if n not in ATTRIBUTE_FEATURE_NAMES]
    assert SCORES.names[SCORES.names.index("scored_date") - len(formula):SCORES.names.index("scored_date")] == formula
    assert SCORES.names[-len(ATTRIBUTE_FEATURE_NAMES):] == ATTRIBUTE_FEATURE_NAMES


def test_attribute_columns_trail_every_table_they_reach_and_are_added_in_place() -> None:
    names = [a.name for a in APPLICATION_ATTRIBUTES]
    lake = {t.name: t for t in LAKE_TABLES}
    assert lake["raw_loan_applications"].added == tuple(names)
    assert SCORES.added == ("role", *ATTRIBUTE_FEATURE_NAMES)
    serving = {t.name: t for t in SERVING_TABLES}
    active = serving["loan_applications_active"]
    assert active.added == tuple(ATTRIBUTE_FEATURE_NAMES)
    ddl = postgres_ddl(active)
    for name in ATTRIBUTE_FEATURE_NAMES:
        assert f"ALTER TABLE loan_applications_active ADD COLUMN IF NOT EXISTS {name} DOUBLE PRECISION" in ddl


def test_an_attribute_column_before_the_columns_on_disk_is_refused() -> None:
    with pytest.raises(ValueError, match="must be its last columns"):
        LakeTable("t", (Column(APPLICATION_ATTRIBUTES[0].name, "int"), Column("day", "date")), "day")


def test_a_column_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        LakeTable("t", (Column("day", "date"), Column("day", "date")), "day")


def test_a_primary_key_column_must_be_declared_required() -> None:
    with pytest.raises(ValueError, match="nullable=False"):
        ServingTable("t", (Column("id", "string"),), ("id",))


def test_a_partition_must_be_a_column() -> None:
    with pytest.raises(ValueError, match="partition column"):
        LakeTable("t", (Column("id", "string"),), "day")


def widened(serving: ServingTable, column: Column) -> ServingTable:
    """A copy of ``serving`` with ``column`` added after its last column the job writes."""
    return replace(serving, columns=serving.sink_columns + (column,) + tuple(
        c for c in serving.columns if c not in serving.sink_columns))


def test_a_column_added_to_a_serving_table_reaches_every_ddl_and_insert() -> None:
    serving = widened(RISK_BY_WINDOW, Column("median_probability", "double"))
    lake = lake_history(serving, "risk_by_window", "window_date", "window_start")
    warehouse = replace(table("RISK_BY_WINDOW"), lake=lake)
    assert "`median_probability` DOUBLE,\n  `window_date` DATE" in lake_columns_ddl(lake)
    assert "`median_probability` DOUBLE,\n  PRIMARY KEY" in jdbc_columns_ddl(serving)
    assert "median_probability DOUBLE PRECISION,\n  PRIMARY KEY" in postgres_ddl(serving)
    assert '"MEDIAN_PROBABILITY" FLOAT,\n  "WINDOW_DATE" DATE' in create_table_sql(warehouse)
    assert lake_select(lake).endswith("`median_probability`, CAST(`window_start` AS DATE) AS `window_date`")
    assert jdbc_select(serving).endswith("`expected_loss_usd`, `median_probability`")


def test_inserts_cast_times_to_the_sink_precision_and_derive_the_partition() -> None:
    lake = lake_select(SCORES).split(", ")
    assert lake[SCORES.names.index("trigger_time")] == "CAST(`event_time` AS TIMESTAMP_LTZ(6)) AS `trigger_time`"
    assert lake[SCORES.names.index("scored_date")] == "CAST(`event_time` AS DATE) AS `scored_date`"
    assert jdbc_select(RISK_BY_WINDOW).startswith("CAST(`window_start` AS TIMESTAMP(3)) AS `window_start`")


def test_the_job_sql_uses_every_table_declaration() -> None:
    text = "\n".join(p.read_text() for p in (REPO_ROOT / "sql").rglob("*.sql"))
    for name in table_fragments():
        assert f"${{{name}}}" in text, f"{name}: declared but no sql/ file uses it"


def test_every_warehouse_table_copies_a_declared_lake_table() -> None:
    assert {t.lake_table for t in TABLES} == {t.name for t in LAKE_TABLES} - {"dead_letters"}
    for t in TABLES:
        assert t.lake in LAKE_TABLES


def _unbounded(props: dict[str, str]) -> set[str]:
    """The columns the properties give no lower or upper bounds."""
    from contracts.table_sql import METRICS_COLUMN_PREFIX
    return {k.removeprefix(METRICS_COLUMN_PREFIX) for k, v in props.items()
            if k.startswith(METRICS_COLUMN_PREFIX) and v in ("counts", "none")}


def test_every_lake_column_naming_a_person_gets_no_bounds_and_every_other_column_keeps_them() -> None:
    from contracts.table_sql import lake_table_properties
    pii = {f.name for c in (*INPUT_EVENTS, DEAD_LETTER) for f in c.fields if f.pii}
    expected = {"raw_loan_applications": {"customer_id", "full_name", "email", "phone"},
                "raw_transactions": {"customer_id", "account_number", "counterparty"},
                "raw_repayments": {"customer_id"}, "dead_letters": {"payload"},
                "customer_behaviour_windows": {"customer_id"}, "scores": {"customer_id"},
                "risk_by_window": set(), "loan_outcomes": {"customer_id"}}
    assert {t.name: _unbounded(lake_table_properties(t)) for t in LAKE_TABLES} == expected
    for t in LAKE_TABLES:  # derived, not listed: every customer id and every PII column, wherever it lands
        assert {c.name for c in t.columns if c.name == "customer_id" or c.name in pii} <= _unbounded(
            lake_table_properties(t)), t.name
        assert _unbounded(lake_table_properties(t)) <= set(t.names), "Iceberg refuses metrics of an unknown column"


def test_a_column_that_names_a_person_added_to_a_contract_loses_its_bounds_in_the_lake() -> None:
    from contracts.schema import Field
    from contracts.table_sql import lake_table_properties
    from contracts.tables import raw_events
    contract = replace(INPUT_EVENTS[0], fields=INPUT_EVENTS[0].fields + (
        Field("national_id", "string", "A new identifier.", pii=True),
        Field("passport_no", "string", "Another.", identifies_person=True), Field("note", "string", "Not one.")))
    unbounded = _unbounded(lake_table_properties(raw_events(contract, "raw_x")))
    assert {"national_id", "passport_no"} <= unbounded and "note" not in unbounded


def test_the_lake_ddl_creates_each_table_with_its_properties_and_format_version_2() -> None:
    from contracts.table_sql import lake_table_properties
    fragments = table_fragments()
    for t in LAKE_TABLES:
        ddl = fragments[f"{t.name}_properties"]
        assert "'format-version' = '2'" in ddl
        for key, value in lake_table_properties(t).items():
            assert f"'{key}' = '{value}'" in ddl, (t.name, key)
    sql = (REPO_ROOT / "sql" / "risk" / "20_lake_tables.sql").read_text()
    assert all(f"WITH (${{{t.name}_properties}})" in sql for t in LAKE_TABLES)
    assert "format-version" not in lake_table_properties(LAKE_TABLES[0]), "Iceberg refuses it as a property update"
