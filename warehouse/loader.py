"""The exactly-once loader: new Iceberg snapshots -> staged Parquet batches -> MERGE by key into Snowflake.

Per table: read the last completely loaded snapshot from LOADER_CONTROL; if every snapshot since is an
append or a compaction, read only the rows the appends added (incremental), otherwise (the recorded
snapshot was expired or the table was overwritten or deleted from) read the whole current snapshot (full).
Rows go in batches: each is written as Parquet, PUT to the stage table's stage, COPYed into it, then
MERGEd by key into the target in one transaction with an appended control row; the control row that
completes the snapshot is committed with the last batch (and, for a full load, with the deletion of
keys no longer in the lake). A crash at any point leaves either the old or the new control row, and a
re-run re-MERGEs by key: no duplicates, no gaps.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loanrisk.errors import LoanRiskError
from loanrisk.settings import Settings
from warehouse.ddl import CONTROL_TABLE, TABLES, WarehouseTable, loader_ddl, q, table

# Fault injection for the crash tests: "<point>:<batch>" kills this process (SIGKILL, no clean-up) at
# point "before_commit" (after the batch's MERGE, before its COMMIT) or "after_commit" of batch N.
FAULT_ENV = "LOANRISK_WAREHOUSE_FAULT"

Progress = Callable[[str], None]


class WarehouseError(LoanRiskError):
    """The warehouse could not be reached or loaded; the message says which table and why."""


@dataclass
class TableReport:
    """What one table's sync did."""

    table: str
    mode: str  # incremental | full | up-to-date | empty
    reason: str = ""
    from_snapshot: int | None = None
    to_snapshot: int | None = None
    batches: int = 0
    rows: int = 0

    def line(self) -> str:
        """One line for the progress output and the flow log."""
        if self.mode in ("up-to-date", "empty"):
            return f"{self.table}: {self.mode}"
        why = f" ({self.reason})" if self.reason else ""
        return (f"{self.table}: {self.mode}{why}, snapshot {self.from_snapshot} -> {self.to_snapshot}, "
                f"{self.rows} rows in {self.batches} batches")


@dataclass
class SyncReport:
    """What a sync did, per table."""

    tables: list[TableReport] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows merged over every table."""
        return sum(t.rows for t in self.tables)

    def summary(self) -> str:
        """Every table's line, then the total."""
        return "\n".join([t.line() for t in self.tables] + [f"merged {self.rows} rows"])


@dataclass(frozen=True)
class Plan:
    """What to load for one table: the mode, the snapshot to reach and why."""

    mode: str
    target: int | None
    reason: str = ""


def plan(lake_table: Any, loaded: int | None) -> Plan:
    """Incremental when every snapshot after ``loaded`` up to the current one is an append, else full.

    A compaction's commit rewrites rows without changing them: the incremental scan skips it (it reads
    only appends), so a daily compaction does not turn the next load into a full one.
    """
    from loanrisk.lake import is_compaction
    current = lake_table.current_snapshot()
    if current is None:
        return Plan("empty", None)
    if loaded == current.snapshot_id:
        return Plan("up-to-date", loaded)
    if loaded is None:
        return Plan("full", current.snapshot_id, "first load")
    snap, chain = current, []
    while True:
        chain.append(snap)
        if snap.parent_snapshot_id == loaded:
            break  # the loaded snapshot is this one's parent (it may have been expired since)
        parent = lake_table.metadata.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id else None
        if parent is None:
            return Plan("full", current.snapshot_id, f"snapshot {loaded} is no longer in the table's history")
        snap = parent
    for s in reversed(chain):
        op = s.summary.operation.value if s.summary is not None else "unknown"
        if op != "append" and not is_compaction(s):
            return Plan("full", current.snapshot_id, f"snapshot {s.snapshot_id} is a {op}")
    return Plan("incremental", current.snapshot_id)


def _record_batches(lake_table: Any, t: WarehouseTable, p: Plan, loaded: int | None) -> Iterator[Any]:
    names = tuple(c.name for c in t.columns)
    lake_names = {f.name for f in lake_table.schema().fields}
    missing = [n for n in names if n not in lake_names]
    if missing:
        raise WarehouseError(f"{t.name}: lake table {t.lake_table} has no column(s) {', '.join(missing)}; "
                             "contracts/tables.py and the lake disagree")
    if p.mode == "incremental":
        scan = lake_table.incremental_append_scan(from_snapshot_id_exclusive=loaded,
                                                  to_snapshot_id_inclusive=p.target, selected_fields=names)
    else:
        scan = lake_table.scan(snapshot_id=p.target, selected_fields=names)
    yield from scan.to_arrow_batch_reader()


def _batches(record_batches: Iterator[Any], batch_rows: int) -> Iterator[Any]:
    """Re-chunk Arrow record batches into tables of at most ``batch_rows`` rows."""
    import pyarrow as pa
    pending: list[Any] = []
    size = 0
    for rb in record_batches:
        while rb.num_rows:
            take = min(rb.num_rows, batch_rows - size)
            pending.append(rb.slice(0, take))
            size += take
            rb = rb.slice(take)
            if size == batch_rows:
                yield pa.Table.from_batches(pending)
                pending, size = [], 0
    if size:
        yield pa.Table.from_batches(pending)


def _with_last(items: Iterator[Any]) -> Iterator[tuple[Any, bool]]:
    """Each item with a flag telling whether it is the last one."""
    it = iter(items)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


def _fault(point: str, batch_no: int) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if spec and spec == f"{point}:{batch_no}":
        os.kill(os.getpid(), signal.SIGKILL)


def merge_sql(t: WarehouseTable) -> str:
    """MERGE of the stage table into the target by key; a matched row is rewritten only when it differs."""
    cols = [c.name for c in t.columns]
    non_key = [c for c in cols if c not in t.key]
    part = ", ".join(q(k) for k in t.key)
    on = t.key_match("t", "s")
    differs = " OR ".join(f"t.{q(c)} IS DISTINCT FROM s.{q(c)}" for c in non_key)
    sets = ", ".join(f"{q(c)} = s.{q(c)}" for c in non_key)
    return (f"MERGE INTO {q(t.name)} AS t USING (SELECT * FROM {q(t.stage_table)} "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY {part}) = 1) AS s ON {on} "
            f"WHEN MATCHED AND ({differs}) THEN UPDATE SET {sets} "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(q(c) for c in cols)}) "
            f"VALUES ({', '.join('s.' + q(c) for c in cols)})")


def delete_missing_sql(t: WarehouseTable) -> str:
    """DELETE of target rows whose key a full load did not see (rows deleted or overwritten in the lake)."""
    match = t.key_match("k", "t")
    return (f"DELETE FROM {q(t.name)} AS t WHERE NOT EXISTS "
            f"(SELECT 1 FROM {q(t.keys_table)} AS k WHERE {match})")


def loaded_snapshot(cur: Any, t: WarehouseTable) -> int | None:
    """The last Iceberg snapshot of ``t`` loaded completely, from the newest control row."""
    cur.execute(f"SELECT {q('SNAPSHOT_ID')} FROM {q(CONTROL_TABLE)} WHERE {q('TABLE_NAME')} = %s "
                f"ORDER BY {q('LOADED_AT')} DESC, {q('BATCH_NO')} DESC LIMIT 1", (t.name,))
    row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


class _TableLoad:
    """Loads one table: stage each batch, MERGE it and append the control row in one transaction."""

    def __init__(self, cur: Any, t: WarehouseTable, p: Plan, loaded: int | None, run_id: str, workdir: Path):
        self.cur, self.t, self.p, self.loaded, self.run_id, self.workdir = cur, t, p, loaded, run_id, workdir

    def stage(self, batch: Any, batch_no: int) -> None:
        """Write the batch as Parquet, PUT it to the stage table's stage and COPY it in (autocommit)."""
        import pyarrow.parquet as pq
        t = self.t
        batch = batch.rename_columns([c.upper() for c in batch.column_names])
        path = self.workdir / f"{t.name.lower()}_{self.run_id}_{batch_no:05d}.parquet"
        pq.write_table(batch, path)
        self.cur.execute(f"TRUNCATE TABLE {q(t.stage_table)}")
        # One stage folder per batch: a file left by a crashed run is never loaded by a later COPY.
        folder = f"@%{t.stage_table}/{self.run_id}/{batch_no:05d}"
        self.cur.execute(f"PUT 'file://{path}' {folder} AUTO_COMPRESS = FALSE OVERWRITE = TRUE")
        self.cur.execute(f"COPY INTO {q(t.stage_table)} FROM {folder} "
                         "FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE) "
                         "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE")
        path.unlink()
        self.cur.execute(f"SELECT COUNT(*) FROM {q(t.stage_table)}")
        staged = int(self.cur.fetchone()[0])
        if staged != batch.num_rows:
            raise WarehouseError(f"{t.name}: batch {batch_no} staged {staged} of {batch.num_rows} rows")
        if self.p.mode == "full":
            keys = ", ".join(q(k) for k in t.key)
            self.cur.execute(f"INSERT INTO {q(t.keys_table)} SELECT DISTINCT {keys} FROM {q(t.stage_table)}")

    def commit(self, batch_no: int, rows: int, last: bool) -> None:
        """One transaction: MERGE the staged batch, (full, last) delete vanished keys, append the control row."""
        t, cur = self.t, self.cur
        cur.execute("BEGIN")
        try:
            if rows:
                cur.execute(merge_sql(t))
            if last and self.p.mode == "full":
                cur.execute(delete_missing_sql(t))
            snapshot = self.p.target if last else self.loaded
            cols = ", ".join(q(n) for n in ("TABLE_NAME", "SNAPSHOT_ID", "TARGET_SNAPSHOT_ID", "MODE", "REASON",
                                            "BATCH_NO", "BATCH_ROWS", "COMPLETE", "RUN_ID", "LOADED_AT"))
            cur.execute(f"INSERT INTO {q(CONTROL_TABLE)} ({cols}) SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                        "CURRENT_TIMESTAMP()",
                        (t.name, snapshot, self.p.target, self.p.mode, self.p.reason, batch_no, rows, last,
                         self.run_id))
            _fault("before_commit", batch_no)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        _fault("after_commit", batch_no)


def _sync_table(cur: Any, lake: Any, namespace: str, t: WarehouseTable, batch_rows: int, run_id: str,
                workdir: Path, progress: Progress) -> TableReport:
    lake_table = lake.load_table(f"{namespace}.{t.lake_table}")
    loaded = loaded_snapshot(cur, t)
    p = plan(lake_table, loaded)
    report = TableReport(t.name, p.mode, p.reason, loaded, p.target)
    if p.mode in ("up-to-date", "empty"):
        progress(report.line())
        return report
    if p.mode == "full":
        cur.execute(f"TRUNCATE TABLE {q(t.keys_table)}")
    load = _TableLoad(cur, t, p, loaded, run_id, workdir)
    batches = _with_last(_batches(_record_batches(lake_table, t, p, loaded), batch_rows))
    saw_any = False
    for batch_no, (batch, last) in enumerate(batches, start=1):
        saw_any = True
        load.stage(batch, batch_no)
        load.commit(batch_no, batch.num_rows, last)
        report.batches, report.rows = batch_no, report.rows + batch.num_rows
        progress(f"{t.name}: batch {batch_no} merged {batch.num_rows} rows ({p.mode}, snapshot {p.target}"
                 f"{', complete' if last else ''})")
    if not saw_any:  # nothing new (e.g. empty commits): move the control row forward, delete for a full load
        cur.execute(f"TRUNCATE TABLE {q(t.stage_table)}")
        load.commit(0, 0, True)
    progress(report.line())
    return report


def ensure_tables(cur: Any) -> None:
    """Create every target, control and staging table that does not exist yet (idempotent DDL)."""
    for stmt in loader_ddl():
        cur.execute(stmt)


def _connect(settings: Settings) -> Any:
    import snowflake.connector

    from warehouse.connection import connect
    sf = settings.snowflake
    where = f"{sf.host}:{sf.port}" if sf.local else sf.account
    try:
        return connect(settings)
    except snowflake.connector.errors.Error as exc:
        raise WarehouseError(f"cannot connect to Snowflake at {where} as {sf.user}: {exc.msg or exc}") from None


def sync(settings: Settings, tables: list[str] | None = None, progress: Progress | None = None, *,
         lake: Any = None, batch_rows: int | None = None) -> SyncReport:
    """Load every new lake row of ``tables`` (default: all) into Snowflake, exactly once."""
    import snowflake.connector

    say = progress or (lambda _line: None)
    chosen = [table(n) for n in tables] if tables else list(TABLES)
    if lake is None:
        from loanrisk.lake import catalog
        lake = catalog(settings)
    size = batch_rows or settings.snowflake.batch_rows
    run_id = uuid.uuid4().hex[:12]
    report = SyncReport()
    conn = _connect(settings)
    try:
        cur = conn.cursor()
        ensure_tables(cur)
        with tempfile.TemporaryDirectory(prefix="loanrisk-warehouse-") as tmp:
            for t in chosen:
                try:
                    report.tables.append(_sync_table(cur, lake, settings.catalog.namespace, t, size, run_id,
                                                     Path(tmp), say))
                except snowflake.connector.errors.Error as exc:
                    raise WarehouseError(f"{t.name}: Snowflake refused the load: {exc.msg or exc}") from None
    finally:
        conn.close()
    return report


def follow(settings: Settings, interval_s: float | None = None, tables: list[str] | None = None,
           progress: Progress | None = None, *, max_runs: int | None = None, lake: Any = None) -> int:
    """Sync every ``interval_s`` seconds until interrupted (or ``max_runs``); a failed run is reported and retried."""
    say = progress or (lambda _line: None)
    interval = interval_s if interval_s is not None else settings.snowflake.follow_interval_s
    runs = 0
    while max_runs is None or runs < max_runs:
        started = time.monotonic()
        try:
            report = sync(settings, tables, say, lake=lake)
            say(f"sync done: {report.rows} rows")
        except LoanRiskError as exc:
            say(f"sync failed (retrying in {interval:g} s): {exc}")
        runs += 1
        if max_runs is not None and runs >= max_runs:
            break
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return runs
