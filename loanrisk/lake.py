"""The one way platform code opens the Iceberg catalog (pyiceberg SqlCatalog on the JDBC catalog tables)."""

from __future__ import annotations

import os
from typing import Any

from loanrisk.settings import Settings

# pyarrow's AWS SDK sends checksum headers that some S3-compatible servers (s3proxy) reject on
# multipart uploads; only send them when the operation requires it (AWS S3 is unaffected).
_CHECKSUM_ENV = {"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                 "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}


def catalog(settings: Settings, uri: str | None = None):
    """The lake's catalog, named as in Flink (the name is stored in every catalog row); ``uri``: the catalog tables
    in another database (a benchmark's SQLite file) over the same object store."""
    for key, value in _CHECKSUM_ENV.items():
        os.environ.setdefault(key, value)
    from pyiceberg.catalog.sql import SqlCatalog
    props = settings.iceberg_catalog_properties()
    return SqlCatalog(settings.catalog.name, **(props if uri is None else {**props, "uri": uri}))


def table_names(settings: Settings, namespace: str) -> list[str]:
    """The names of the namespace's tables, sorted (the maintenance flows' default: every table)."""
    return sorted(name for _, name in catalog(settings).list_tables(namespace))


def snapshot_totals(settings: Settings, tables: tuple[str, ...] | list[str], key: str) -> dict[str, int]:
    """A total of the current snapshot's summary (``total-records``, ``total-data-files``) for each of the
    namespace's ``tables`` (0 for a table not created yet)."""
    cat = catalog(settings)
    counts = {}
    for name in tables:
        try:
            tbl = cat.load_table(f"{settings.catalog.namespace}.{name}")
            snap = tbl.current_snapshot()
            counts[name] = int(snap.summary.get(key, 0)) if snap and snap.summary else 0
        except Exception:  # noqa: BLE001 - table not created yet
            counts[name] = 0
    return counts


def committed_rows(settings: Settings, tables: tuple[str, ...] | list[str]) -> dict[str, int]:
    """Rows committed so far in each of the namespace's ``tables`` (0 for a table not created yet)."""
    return snapshot_totals(settings, tables, "total-records")


# The Flink committer records its last committed checkpoint in the snapshot summary under this key.
FLINK_CHECKPOINT_KEY = "flink.max-committed-checkpoint-id"
# Compaction (prefect_flows/lake_upkeep.py) marks its commits so: they replace files by files holding
# exactly the same rows, so readers that follow changes (the warehouse loader) can step over them.
COMPACTION_PROPERTY = ("loanrisk.maintenance", "compaction")


def is_compaction(snapshot: Any) -> bool:
    """Whether ``snapshot`` is a compaction's rewrite: no row added or removed."""
    key, value = COMPACTION_PROPERTY
    props = snapshot.summary.additional_properties if snapshot.summary is not None else {}
    return bool(props.get(key) == value)


def expired_meanwhile(exc: BaseException) -> bool:
    """Whether pyiceberg refused a snapshot expiry because another maintainer (lake maintenance, an erasure's
    history purge) expired one of the listed snapshots first: listing them again on the refreshed table is
    the answer."""
    return isinstance(exc, ValueError) and "does not exist" in str(exc)


def job_commit_chain(table: Any) -> list[int]:
    """The current snapshot and its ancestors back to the newest one a Flink job committed (ids, newest first).

    A restored Flink job finds its last committed checkpoint by walking back from the current snapshot
    to one of its own commits; if an expiry removed any snapshot of that walk, it would commit its last
    checkpoint's files again. So this chain stays through every expiry. With no Flink commit in the
    history only the current snapshot is needed.
    """
    by_id = {s.snapshot_id: s for s in table.snapshots()}
    current = table.current_snapshot()
    chain: list[int] = []
    snap = current
    while snap is not None:
        chain.append(snap.snapshot_id)
        if FLINK_CHECKPOINT_KEY in (snap.summary.additional_properties if snap.summary else {}):
            return chain
        snap = by_id.get(snap.parent_snapshot_id) if snap.parent_snapshot_id is not None else None
    return [current.snapshot_id] if current is not None else []


def appends_rows(operation: str, added_records: int) -> bool:
    """Whether a snapshot brought new rows: an append that added some (Flink also commits empty appends; a
    compaction's or an erasure's overwrite brings none new)."""
    return operation == "append" and added_records > 0


def newest_append(table: Any) -> int | None:
    """The newest snapshot that appended rows (None: none left): what data_quality's freshness reads, so expiry
    keeps it however old it is, and a quiet table shows its real age rather than none at all."""
    appends = [s for s in table.snapshots() if s.summary is not None and appends_rows(
        s.summary.operation.value, int(s.summary.additional_properties.get("added-records", 0)))]
    return max(appends, key=lambda s: (s.timestamp_ms, s.sequence_number)).snapshot_id if appends else None


def upgrade_table_properties(table: Any, wanted: dict[str, str], attempts: int = 5) -> dict[str, str]:
    """Set the properties of ``wanted`` that ``table`` lacks or holds otherwise; returns those it set (none: no commit).

    The job commits to the same table every checkpoint: a conflict is retried on the refreshed table.
    """
    import time

    from pyiceberg.exceptions import CommitFailedException
    for attempt in range(attempts):
        table.refresh()
        changed = {k: v for k, v in wanted.items() if table.properties.get(k) != v}
        if not changed:
            return {}
        try:
            with table.transaction() as tx:
                tx.set_properties(changed)
            return changed
        except CommitFailedException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    return {}


def upgrade_lake_tables(settings: Settings, cat: Any = None) -> dict[str, dict[str, str]]:
    """Give every existing lake table the properties its declaration renders (contracts/table_sql.py).

    ``CREATE TABLE IF NOT EXISTS`` leaves a table made by an earlier version as it was, and the job's Iceberg
    writers read the properties when the job is submitted: run before every submission, and by lake maintenance.
    Returns, per table changed, the properties set. A table not created yet is left to the job's DDL.
    """
    from pyiceberg.exceptions import NoSuchTableError

    from contracts.table_sql import lake_table_properties
    from contracts.tables import LAKE_TABLES
    cat = cat if cat is not None else catalog(settings)
    done = {}
    for declared in LAKE_TABLES:
        try:
            table = cat.load_table(f"{settings.catalog.namespace}.{declared.name}")
        except NoSuchTableError:
            continue
        changed = upgrade_table_properties(table, lake_table_properties(declared))
        if changed:
            done[declared.name] = changed
    return done


# Iceberg type of each logical type (contracts/schema.py TYPE_MAP's Iceberg names), for columns added in place.
_ICEBERG_TYPES = {"string": "StringType", "int": "IntegerType", "long": "LongType", "double": "DoubleType",
                  "boolean": "BooleanType", "date": "DateType", "timestamptz": "TimestamptzType"}


def add_missing_columns(settings: Settings, cat: Any = None) -> dict[str, list[str]]:
    """Add to every lake table already created the trailing columns it lacks (contracts/tables.py ``added``: the
    application attributes and the columns declared ``added_in_place``), as optional columns in their declared
    place; returns what was added, by table.

    The job's ``CREATE TABLE IF NOT EXISTS`` keeps a table as it is, so a table created before such a column was
    declared takes it here, before the job is submitted. The job writes by position, so each column goes right
    after the column declared before it (a table with attributes takes a later column in front of them). Tables
    not created yet are left to the job.
    """
    import pyiceberg.types
    from pyiceberg.exceptions import NoSuchTableError

    from contracts.tables import LAKE_TABLES

    cat = catalog(settings) if cat is None else cat
    added: dict[str, list[str]] = {}
    for table in LAKE_TABLES:
        if not table.added:
            continue
        try:
            tbl = cat.load_table(f"{settings.catalog.namespace}.{table.name}")
        except NoSuchTableError:
            continue
        have = {f.name for f in tbl.schema().fields}
        missing = [c for c in table.columns if c.name in table.added and c.name not in have]
        if not missing:
            continue
        with tbl.update_schema() as update:
            for c in missing:
                update.add_column(c.name, getattr(pyiceberg.types, _ICEBERG_TYPES[c.iceberg_type])())
                before = table.names[table.names.index(c.name) - 1]
                if before in have:
                    update.move_after(c.name, before)
                have.add(c.name)
        added[table.name] = [c.name for c in missing]
    return added
