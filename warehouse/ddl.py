"""Snowflake DDL rendered from the lake's table declarations, plus the loader and analyst roles.

One source of truth: each warehouse table copies a lake table declared in contracts/tables.py (the same
declaration the Flink DDL of sql/risk/20_lake_tables.sql is rendered from), and every column maps to its
Snowflake type through contracts.schema.TYPE_MAP. `python -m warehouse.ddl` prints the script kept in
sql/warehouse/00_schema.sql (a test checks the file is current).

Behaviour features: CUSTOMER_BEHAVIOUR_WINDOWS, one row per customer and closed behaviour window; the exact
feature vector each score used is kept as RISK_SCORES' feature columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.tables import (BEHAVIOUR_HISTORY, LAKE_TABLES, OUTCOME_HISTORY, RAW_LOAN_APPLICATIONS,
                              RAW_REPAYMENTS, RAW_TRANSACTIONS, RISK_HISTORY, SCORES, Column, LakeTable)
from loanrisk.settings import REPO_ROOT, Settings

SCHEMA_SQL = REPO_ROOT / "sql" / "warehouse" / "00_schema.sql"
CONTROL_TABLE = "LOADER_CONTROL"


@dataclass(frozen=True)
class WarehouseTable:
    """A Snowflake table loaded from one lake table, merged by ``key``, clustered by ``cluster_by``.

    ``null_safe_key``: key columns that may be NULL (rows written before the column existed, or a champion row
    left unscored); they are matched with IS NOT DISTINCT FROM.
    """

    name: str
    lake: LakeTable
    key: tuple[str, ...]
    cluster_by: tuple[str, ...]
    doc: str
    null_safe_key: tuple[str, ...] = ()

    def key_match(self, left: str, right: str) -> str:
        """The condition that rows ``left`` and ``right`` have the same key."""
        return " AND ".join(f"{left}.{q(k)} {'IS NOT DISTINCT FROM' if k in self.null_safe_key else '='} {right}.{q(k)}"
                            for k in self.key)

    @property
    def lake_table(self) -> str:
        """The name of the lake table it copies."""
        return self.lake.name

    @property
    def columns(self) -> tuple[Column, ...]:
        """The lake table's columns, in order."""
        return self.lake.columns

    @property
    def stage_table(self) -> str:
        """Transient table each batch is copied into before the MERGE."""
        return f"LOAD_STAGE_{self.name}"

    @property
    def keys_table(self) -> str:
        """Transient table holding every key of a full reload (rows whose key is absent are deleted)."""
        return f"LOAD_KEYS_{self.name}"


# Clustering only where a table grows large and is filtered by the column: the raw events and scores by
# day; the small aggregate and outcome tables are not clustered (clustering costs credits to maintain).
TABLES: tuple[WarehouseTable, ...] = (
    WarehouseTable("LOAN_APPLICATIONS", RAW_LOAN_APPLICATIONS, ("event_id",), ("event_date",),
                   "Valid loan applications (PII hashed), one row per event."),
    WarehouseTable("TRANSACTIONS", RAW_TRANSACTIONS, ("event_id",), ("event_date", "customer_id"),
                   "Valid bank transactions, one row per event."),
    WarehouseTable("REPAYMENTS", RAW_REPAYMENTS, ("event_id",), ("event_date",),
                   "Valid installment records, one row per event."),
    WarehouseTable("CUSTOMER_BEHAVIOUR_WINDOWS", BEHAVIOUR_HISTORY, ("customer_id", "behaviour_as_of"),
                   ("window_date",), "Behaviour features per customer and closed behaviour window."),
    # One row per scoring and model: the champion's, and one per shadow challenger (role, model_version).
    WarehouseTable("RISK_SCORES", SCORES, ("loan_id", "trigger_kind", "trigger_time", "role", "model_version"),
                   ("scored_date",), "Every scoring by the champion and each shadow challenger (role): probability, "
                   "model version, exposure and the feature row scored.", null_safe_key=("role", "model_version")),
    WarehouseTable("RISK_BY_WINDOW", RISK_HISTORY, ("window_start", "product", "region", "grade_band"), (),
                   "Risk aggregates per tumbling window and segment."),
    WarehouseTable("LOAN_OUTCOMES", OUTCOME_HISTORY, ("loan_id", "repayment_records"), (),
                   "Outcome history per loan (latest observed_until per loan is its outcome)."),
)

CONTROL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TABLE_NAME", "VARCHAR"),            # the Snowflake table
    ("SNAPSHOT_ID", "NUMBER(19,0)"),      # last Iceberg snapshot loaded completely (NULL: none yet)
    ("TARGET_SNAPSHOT_ID", "NUMBER(19,0)"),  # the snapshot the run that wrote this row was loading
    ("MODE", "VARCHAR"),                  # incremental | full
    ("REASON", "VARCHAR"),                # why a full load was chosen
    ("BATCH_NO", "NUMBER(10,0)"),
    ("BATCH_ROWS", "NUMBER(19,0)"),
    ("COMPLETE", "BOOLEAN"),              # this row's transaction finished the target snapshot
    ("RUN_ID", "VARCHAR"),
    ("LOADED_AT", "TIMESTAMP_TZ(6)"),
)


def table(name: str) -> WarehouseTable:
    """The warehouse table called ``name`` (Snowflake or lake name, any case)."""
    for t in TABLES:
        if name.upper() == t.name or name.lower() == t.lake_table:
            return t
    known = ", ".join(t.name for t in TABLES)
    from loanrisk.errors import ConfigError
    raise ConfigError(f"no warehouse table {name!r}; known: {known}")


def lake_columns() -> dict[str, tuple[Column, ...]]:
    """Columns of every lake table, by table name (from contracts/tables.py)."""
    return {t.name: t.columns for t in LAKE_TABLES}


def iceberg_schema(lake_table: str) -> Any:
    """The pyiceberg schema of a lake table, from the same column list as the warehouse DDL (tests and benchmarks
    make local tables like the lake's with it)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import (BooleanType, DateType, DoubleType, IntegerType, LongType, NestedField, StringType,
                                 TimestamptzType)

    types = {"string": StringType, "int": IntegerType, "long": LongType, "double": DoubleType,
             "boolean": BooleanType, "date": DateType, "timestamptz": TimestamptzType}
    return Schema(*[NestedField(i, c.name, types[c.iceberg_type](), required=False)
                    for i, c in enumerate(lake_columns()[lake_table], start=1)])


def iceberg_partition_spec(lake_table: str, schema: Any) -> Any:
    """The lake table's partitioning over ``schema``: identity on its declared date column, as the job's DDL has it."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    from contracts.tables import lake_table as declared
    column = declared(lake_table).partitioned_by
    return PartitionSpec(PartitionField(schema.find_field(column).field_id, 1000, IdentityTransform(), column))


def q(name: str) -> str:
    """A quoted Snowflake identifier (upper case: the same object as the unquoted name)."""
    return '"' + name.upper().replace('"', '""') + '"'


def create_table_sql(t: WarehouseTable) -> str:
    """CREATE TABLE IF NOT EXISTS for one warehouse table."""
    cols = ",\n  ".join(f"{q(c.name)} {c.snowflake_type}" for c in t.columns)
    cluster = f"\nCLUSTER BY ({', '.join(q(c) for c in t.cluster_by)})" if t.cluster_by else ""
    return f"CREATE TABLE IF NOT EXISTS {q(t.name)} (\n  {cols}\n){cluster}\nCOMMENT = '{t.doc}'"


def add_attribute_columns_sql(t: WarehouseTable, target: str) -> list[str]:
    """ALTER TABLE ... ADD COLUMN IF NOT EXISTS for the lake table's trailing attribute columns (contracts/attributes.py):
    a table created before an attribute was declared takes it in place."""
    return [f"ALTER TABLE {q(target)} ADD COLUMN IF NOT EXISTS {q(c.name)} {c.snowflake_type}"
            for c in t.columns if c.name in t.lake.added]


def create_control_sql() -> str:
    """CREATE TABLE IF NOT EXISTS for the loader's control table (append-only: one row per committed batch)."""
    cols = ",\n  ".join(f"{q(n)} {typ}" for n, typ in CONTROL_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {q(CONTROL_TABLE)} (\n  {cols}\n)"


def loader_ddl() -> list[str]:
    """Statements the loader role runs (idempotent): every target table, the control and staging tables."""
    stmts = [create_table_sql(t) for t in TABLES] + [create_control_sql()]
    for t in TABLES:
        stmts += add_attribute_columns_sql(t, t.name)
        stmts.append(f"CREATE TRANSIENT TABLE IF NOT EXISTS {q(t.stage_table)} LIKE {q(t.name)}")
        stmts += add_attribute_columns_sql(t, t.stage_table)
        keys = ", ".join(q(k) for k in t.key)
        stmts.append(f"CREATE TRANSIENT TABLE IF NOT EXISTS {q(t.keys_table)} AS SELECT {keys} FROM {q(t.name)} "
                     "WHERE FALSE")
        # A keys table made when the key had fewer columns takes the others (the scores' role and model_version).
        types = {c.name: c.snowflake_type for c in t.columns}
        stmts += [f"ALTER TABLE {q(t.keys_table)} ADD COLUMN IF NOT EXISTS {q(k)} {types[k]}" for k in t.key]
    return stmts


@dataclass(frozen=True)
class Grant:
    """Privileges a role gets on an object (kind: warehouse, database, schema, all_tables, future_tables)."""

    role: str
    privileges: tuple[str, ...]
    kind: str


def grants(settings: Settings) -> list[Grant]:
    """The loader writes (and owns what it creates); the analyst reads, nothing more."""
    loader, analyst = settings.snowflake.role, settings.snowflake.analyst_role
    table_write = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
    return [
        Grant(loader, ("USAGE",), "warehouse"),
        Grant(loader, ("USAGE",), "database"),
        Grant(loader, ("USAGE", "CREATE TABLE"), "schema"),
        Grant(loader, table_write, "all_tables"),
        Grant(loader, table_write, "future_tables"),
        Grant(analyst, ("USAGE",), "warehouse"),
        Grant(analyst, ("USAGE",), "database"),
        Grant(analyst, ("USAGE",), "schema"),
        Grant(analyst, ("SELECT",), "all_tables"),
        Grant(analyst, ("SELECT",), "future_tables"),
    ]


def grant_sql(g: Grant, settings: Settings) -> str:
    """One Snowflake GRANT statement."""
    sf = settings.snowflake
    target = {"warehouse": f"WAREHOUSE {sf.warehouse}", "database": f"DATABASE {sf.database}",
              "schema": f"SCHEMA {sf.database}.{sf.schema_name}",
              "all_tables": f"ALL TABLES IN SCHEMA {sf.database}.{sf.schema_name}",
              "future_tables": f"FUTURE TABLES IN SCHEMA {sf.database}.{sf.schema_name}"}[g.kind]
    return f"GRANT {', '.join(g.privileges)} ON {target} TO ROLE {g.role}"


def admin_ddl(settings: Settings) -> list[str]:
    """Statements an administrator runs once (SECURITYADMIN/SYSADMIN): database, schema, roles, grants."""
    sf = settings.snowflake
    stmts = [f"CREATE DATABASE IF NOT EXISTS {sf.database}",
             f"CREATE SCHEMA IF NOT EXISTS {sf.database}.{sf.schema_name}",
             f"CREATE ROLE IF NOT EXISTS {sf.role}",
             f"CREATE ROLE IF NOT EXISTS {sf.analyst_role}"]
    return stmts + [grant_sql(g, settings) for g in grants(settings)]


def schema_script(settings: Settings) -> str:
    """The whole script: admin part (roles and grants), then the tables, as kept in sql/warehouse/00_schema.sql."""
    head = ("-- Snowflake schema of the warehouse, generated by `python -m warehouse.ddl` (`riskctl warehouse ddl`)\n"
            "-- from the lake's table definitions: do not edit by hand. Part 1 is run once by an administrator;\n"
            "-- part 2 is what the loader runs (idempotent) before every sync.\n")
    part1 = "\n".join(s + ";" for s in admin_ddl(settings))
    part2 = f"USE ROLE {settings.snowflake.role};\nUSE SCHEMA {settings.snowflake.database}." \
            f"{settings.snowflake.schema_name};\n" + "\n\n".join(s + ";" for s in loader_ddl())
    return f"{head}\n-- Part 1: database, schema, roles and grants (administrator)\n{part1}\n\n" \
           f"-- Part 2: tables (loader role)\n{part2}\n"


def main() -> None:
    """Print the schema script for the default settings."""
    print(schema_script(Settings()), end="")


if __name__ == "__main__":
    main()
