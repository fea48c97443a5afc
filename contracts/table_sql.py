"""DDL and INSERT select lists rendered from the table declarations of contracts/tables.py.

sql/ files use them as parameters (jobs/sqlfiles.py), keyed by the Flink table name:
``${<lake table>_columns}``, ``${<lake table>_partition}`` and ``${<lake table>_properties}`` in the Iceberg DDL,
``${<jdbc table>_columns}`` (with its primary key) and ``${<jdbc table>_table}`` in the JDBC DDL (the JDBC
table of serving table ``t`` is ``pg_t``),
``${<table>_select}`` for the SELECT list of the INSERT writing it, and ``${<serving table>_postgres}``
for the PostgreSQL DDL of sql/serving/; the scoring API's tables, which the job does not write, have only
that one and ``${<table>_table}``, their name with its schema. The Snowflake DDL is rendered by warehouse/ddl.py.
"""

from __future__ import annotations

from contracts.tables import API_TABLES, LAKE_TABLES, SERVING_TABLES, Column, LakeTable, ServingTable

# Iceberg's metrics mode for a column whose values point at a person: value and null counts, no lower or upper
# bound. A bound is a (16-character prefix of a) value kept in every manifest that lists the file, and in every
# old snapshot's manifests, long after an erasure removed the rows; a random id's bounds prune almost no file.
NO_BOUNDS = "counts"
METRICS_COLUMN_PREFIX = "write.metadata.metrics.column."
# Set when a table is created and never changed after (Iceberg refuses it as a property update).
CREATE_ONLY_PROPERTIES = {"format-version": "2"}

# The JDBC connector has no TIMESTAMP_LTZ: the job writes UTC times as TIMESTAMP(3) (session and JVM in UTC).
JDBC_TIMESTAMP = "TIMESTAMP(3)"


def flink_name(name: str) -> str:
    """A Flink SQL identifier, quoted so a name that is a reserved word needs no special case."""
    return f"`{name}`"


def _jdbc_type(c: Column) -> str:
    return JDBC_TIMESTAMP if c.type == "timestamp" else c.flink_type


def lake_columns_ddl(t: LakeTable) -> str:
    """Column definitions of the Iceberg table (nullable, as Iceberg evolves more easily that way)."""
    return ",\n  ".join(f"{flink_name(c.name)} {c.flink_type}" for c in t.columns)


def lake_table_properties(t: LakeTable) -> dict[str, str]:
    """The Iceberg table properties a lake table must have (both the job's writers and pyiceberg's honour them).

    Writers are not hash-distributed by partition (see sql/risk/20_lake_tables.sql; the job's
    ``flink.lake_distribution`` overrides it for a replay); no column naming a person gets bounds in the manifests;
    each commit deletes the metadata files past the last ``write.metadata.previous-versions-max`` (Iceberg's
    default, 100) instead of leaving them to orphan clean-up.
    """
    props = {"write.distribution-mode": "none", "write.metadata.delete-after-commit.enabled": "true"}
    props.update({f"{METRICS_COLUMN_PREFIX}{c.name}": NO_BOUNDS for c in t.columns if c.names_a_person})
    return props


def lake_properties_ddl(t: LakeTable) -> str:
    """The WITH options of the Iceberg table's CREATE TABLE."""
    props = {**CREATE_ONLY_PROPERTIES, **lake_table_properties(t)}
    return ",\n  ".join(f"'{k}' = '{v}'" for k, v in props.items())


def jdbc_columns_ddl(t: ServingTable) -> str:
    """Column definitions and primary key of the Flink JDBC table (upserts need the key)."""
    cols = [f"{flink_name(c.name)} {_jdbc_type(c)}" for c in t.sink_columns]
    cols.append(f"PRIMARY KEY ({', '.join(flink_name(k) for k in t.primary_key)}) NOT ENFORCED")
    return ",\n  ".join(cols)


def _select(columns: tuple[Column, ...], type_of: dict[str, str]) -> str:
    # Times are cast to the sink's precision; a column written from a differently named one is cast
    # to its own type (the date partition of an event time). Each is named as its column, so the plan's
    # sink fields keep the table's names.
    exprs = []
    for c in columns:
        src = flink_name(c.written_from)
        cast = c.type == "timestamp" or c.source is not None
        exprs.append(f"CAST({src} AS {type_of[c.name]}) AS {flink_name(c.name)}" if cast else src)
    return ", ".join(exprs)


def lake_select(t: LakeTable) -> str:
    """The SELECT list of the INSERT into the lake table, in its column order."""
    return _select(t.columns, {c.name: c.flink_type for c in t.columns})


def jdbc_select(t: ServingTable) -> str:
    """The SELECT list of the INSERT into the JDBC table, in its column order."""
    return _select(t.sink_columns, {c.name: _jdbc_type(c) for c in t.sink_columns})


def postgres_ddl(t: ServingTable) -> str:
    """CREATE TABLE IF NOT EXISTS for the serving table (and its schema), then DROP NOT NULL for its relaxed columns
    and ADD COLUMN IF NOT EXISTS for its attribute columns (a table created before an attribute was declared)."""
    cols = []
    for c in t.columns:
        col = f"{c.name} {c.postgres_type}"
        if not c.nullable:
            col += " NOT NULL"
        if c.pg_default is not None:
            col += f" DEFAULT {c.pg_default}"
        cols.append(col)
    cols.append(f"PRIMARY KEY ({', '.join(t.primary_key)})")
    body = ",\n  ".join(cols)
    stmts = [f"CREATE SCHEMA IF NOT EXISTS {t.schema}"] if t.schema else []
    stmts += [f"CREATE TABLE IF NOT EXISTS {t.qualified_name} (\n  {body}\n)"]
    stmts += [f"ALTER TABLE {t.qualified_name} ALTER COLUMN {n} DROP NOT NULL" for n in t.relaxed]
    stmts += [f"ALTER TABLE {t.qualified_name} ADD COLUMN IF NOT EXISTS {c.name} {c.postgres_type}"
              for c in t.columns if c.name in t.added]
    return ";\n".join(stmts)


def table_fragments() -> dict[str, str]:
    """Every table parameter, keyed by the name the sql/ files use."""
    pairs: list[tuple[str, str]] = []
    for lake in LAKE_TABLES:
        pairs += [(f"{lake.name}_columns", lake_columns_ddl(lake)),
                  (f"{lake.name}_partition", flink_name(lake.partitioned_by)),
                  (f"{lake.name}_properties", lake_properties_ddl(lake)),
                  (f"{lake.name}_select", lake_select(lake))]
    for serving in SERVING_TABLES:
        pairs += [(f"{serving.jdbc_table}_columns", jdbc_columns_ddl(serving)),
                  (f"{serving.jdbc_table}_table", serving.name),
                  (f"{serving.jdbc_table}_select", jdbc_select(serving)),
                  (f"{serving.name}_postgres", postgres_ddl(serving))]
    for api in API_TABLES:
        pairs += [(f"{api.name}_postgres", postgres_ddl(api)), (f"{api.name}_table", api.qualified_name)]
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("two tables render to the same parameter name; rename one")
    return out
