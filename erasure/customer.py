"""Erasure requests: remove one customer's rows from every sink (Iceberg lake, PostgreSQL serving, Snowflake).

Tables are discovered, not listed: every lake table and every serving/warehouse table with a
``customer_id`` column is cleaned, and dead letters whose payload names the customer are removed
too. Lake deletes are Iceberg row-level deletes; the snapshots that still reference the deleted rows
are then expired and the files only they referenced are removed: data files, and the manifests and
manifest lists whose entries describe those files. The running job's latest commit is kept (see
``_expirable``): repeat the request after the next checkpoint to purge files that commit still
referenced (``riskctl privacy erase`` is idempotent; the ledger replay does it).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loanrisk.errors import LoanRiskError
from loanrisk.settings import Settings

log = logging.getLogger(__name__)
CUSTOMER_COLUMN = "customer_id"
DEAD_LETTERS = "dead_letters"
COMMIT_ATTEMPTS = 5  # the running job commits to the same tables every checkpoint: retry on conflicts
# In the summary of every snapshot an erasure commits, so a later request can tell the snapshots older than an
# erasure (which may hold erased rows) from those after it. Its value is the time, never whom it erased.
ERASURE_KEY = "loanrisk.erasure"


class ErasureError(LoanRiskError):
    """Part of an erasure request could not be carried out (the message names the sinks)."""


@dataclass
class ErasureReport:
    """Rows removed per sink table, and sinks that failed or were skipped."""

    customer_id: str
    removed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    history: dict[str, HistoryPurge] = field(default_factory=dict)  # per lake table

    def lines(self) -> list[str]:
        """One line per table, then what went from each lake table's history, then failures and skips."""
        done = "would be removed" if self.dry_run else "removed"
        out = [f"{name}: {n} row(s) {done}" for name, n in sorted(self.removed.items())]
        out += [purge.line(name, self.dry_run) for name, purge in sorted(self.history.items())]
        out += [f"{name}: FAILED: {why}" for name, why in sorted(self.failed.items())]
        out += [f"{name}: skipped: {why}" for name, why in sorted(self.skipped.items())]
        return out


def _scalars(value: Any) -> Iterator[str]:
    """Every scalar of a parsed JSON document, as text (a customer id sent as a number is still theirs)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _scalars(v)
    elif isinstance(value, list):
        for v in value:
            yield from _scalars(v)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def payload_names_customer(payload: str | None, customer_id: str) -> bool:
    """Whether a dead-letter payload names ``customer_id`` exactly, never as part of another id (c1 is not c12).

    A payload that parses (the redaction stores those as JSON) names them when one of its values is the id;
    any other payload (broken JSON, masked text) when the id stands as a whole token.
    """
    if not payload or customer_id not in payload:
        return False
    try:
        doc = json.loads(payload)
    except ValueError:
        doc = None
    if isinstance(doc, (dict, list)):
        return any(v == customer_id for v in _scalars(doc))
    return re.search(rf"(?<![A-Za-z0-9_.:-]){re.escape(customer_id)}(?![A-Za-z0-9_.:-])", payload) is not None


def _retry(action: Any, errors: tuple[type[BaseException], ...] | None = None) -> Any:
    """Run ``action`` again after an Iceberg commit conflict with the job's commits or lake maintenance.

    A ValidationException is the conflict a delete must not commit through: files that may hold the
    customer were added (by the job, or a compaction rewriting them) after the delete read the table.
    ``action`` refreshes the table, so the next attempt reads and deletes those rows too. ``errors``
    replaces the exceptions retried.
    """
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    retried = errors or (CommitFailedException, ValidationException)
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return action()
        except retried:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(1 + attempt)
    return None


def _expirable(table: Any) -> list[int]:
    """Snapshots that can go: all but the job's commit chain (the current one back to the job's latest commit)."""
    from loanrisk.lake import job_commit_chain
    keep = set(job_commit_chain(table))
    return [s.snapshot_id for s in table.snapshots() if s.snapshot_id not in keep]


def _read_again(action: Any) -> Any:
    """Run ``action`` again when a file it read was gone: lake maintenance compacted the rows into new
    files and removed the old ones (snapshot expiry, orphan clean-up) after this request loaded the table."""
    return _retry(action, (FileNotFoundError,))


@dataclass
class HistoryPurge:
    """What leaving a lake table's history did (or would do, in a dry run)."""

    snapshots: int = 0  # expired
    files: int = 0  # deleted: data files, manifests and manifest lists only expired snapshots referenced
    kept: int = 0  # snapshots of the job's commit chain older than an erasure, still holding the table as it was

    def line(self, table: str, dry_run: bool) -> str:
        done = ("would be expired", "would be deleted") if dry_run else ("expired", "deleted")
        line = f"{table}: history: {self.snapshots} snapshot(s) {done[0]}, {self.files} file(s) {done[1]}"
        if self.kept:
            line += (f"; {self.kept} snapshot(s) kept for the job's last commit: run the request again after its "
                     "next checkpoint")
        return line


def _referenced(table: Any, snapshots: list[Any]) -> set[str]:
    """Every file ``snapshots`` reference: manifest lists, manifests, live data and delete files.

    Manifests keep column bounds of the files they list, and every snapshot keeps the manifests of its time,
    so a snapshot's files hold a customer's id (and, without bounds, their rows) until the snapshot goes.
    """
    out: set[str] = set()
    manifests: set[str] = set()
    for snap in snapshots:
        out.add(snap.manifest_list)
        for manifest in snap.manifests(table.io):
            if manifest.manifest_path in manifests:
                continue
            manifests.add(manifest.manifest_path)
            out |= {e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True)}
    return out | manifests


def kept_from_before_an_erasure(table: Any, erasing: bool = False) -> int:
    """How many snapshots the job's commit chain keeps from before the table's newest erasure: those may still hold
    erased rows, and go once the job has committed on top of the erasure.

    ``erasing``: as it will be once an erasure commits on top of the current snapshot (a dry run that found rows).
    The chain's snapshots after the newest erasure (the job's commits, a compaction) hold none of its rows.
    """
    from loanrisk.lake import job_commit_chain
    chain = job_commit_chain(table)
    if erasing:
        return len(chain)
    by_id = {s.snapshot_id: s for s in table.snapshots()}
    for i, snapshot_id in enumerate(chain):
        summary = by_id[snapshot_id].summary
        if ERASURE_KEY in (summary.additional_properties if summary else {}):
            return len(chain) - 1 - i
    return 0


def _purge_history(table: Any, dry_run: bool = False, erasing: bool = False) -> HistoryPurge:
    """Expire the snapshots that may go and delete every file no remaining snapshot references.

    pyiceberg's expiry only drops the snapshots from the metadata, so the files only they referenced are deleted
    here: those referenced before the expiry and by no snapshot after it, the job's commits meanwhile included.
    The metadata files that still list expired snapshots hold no rows or bounds; each commit deletes those past
    ``write.metadata.previous-versions-max`` (``write.metadata.delete-after-commit.enabled``).
    """
    from pyiceberg.exceptions import CommitFailedException

    from loanrisk.lake import expired_meanwhile
    table.refresh()
    snapshots = table.snapshots()
    old = set(_expirable(table))
    kept = kept_from_before_an_erasure(table, erasing)
    if dry_run:
        keep = [s for s in snapshots if s.snapshot_id not in old]
        freed = _referenced(table, [s for s in snapshots if s.snapshot_id in old]) - _referenced(table, keep)
        return HistoryPurge(len(old), len(freed), kept)
    if not old:
        return HistoryPurge(0, 0, kept)
    expired = len(old)
    before: set[str] = set()

    def expire() -> None:
        nonlocal expired, before
        ids = _expirable(table.refresh())
        expired = len(ids)
        # What the snapshots referenced as this attempt found them: a commit landing after the request started
        # (the job's, a compaction's) and expired here leaves no file behind.
        before = _referenced(table, table.snapshots())
        if ids:
            try:
                table.maintenance.expire_snapshots().by_ids(ids).commit()
            except ValueError as exc:
                if not expired_meanwhile(exc):
                    raise
                # Lake maintenance expired some of them first: the next attempt lists them again.
                raise CommitFailedException(str(exc)[:200]) from None
    _retry(expire)
    table.refresh()
    gone = before - _referenced(table, table.snapshots())
    for path in gone:
        try:
            table.io.delete(path)
        except FileNotFoundError:
            pass  # lake maintenance removed it first
    return HistoryPurge(expired, len(gone), kept_from_before_an_erasure(table))


def _day_column(table: Any) -> str | None:
    """The column of the table's identity partition (the lake's day column), None for any other spec."""
    from pyiceberg.transforms import IdentityTransform
    fields = table.spec().fields
    if len(fields) != 1 or not isinstance(fields[0].transform, IdentityTransform):
        return None
    return str(table.schema().find_field(fields[0].source_id).name)


def _erase_lake_table(table: Any, customer_id: str, dry_run: bool = False) -> tuple[int, HistoryPurge | None]:
    """Delete the customer's rows from one Iceberg table, then the history that still holds them; returns how many
    rows there were (-1: no such column) and what went from the history (None: nothing written yet).

    ``dry_run`` counts them, and what the history would lose, and changes nothing. The rows are found by a scan
    of one or two columns, and the delete is narrowed to the partitions holding them: pyiceberg's delete reads
    every file its filter may match, one after another, and a customer's rows sit in a few of a long history's
    day partitions.
    """
    from pyiceberg.expressions import And, EqualTo, In
    names = {f.name for f in table.schema().fields}
    if CUSTOMER_COLUMN not in names and table.name()[-1] != DEAD_LETTERS:
        return -1, None
    day = _day_column(table)
    extra = (day,) if day else ()

    def matching() -> tuple[int, Any]:
        """How many rows name the customer, and the filter that deletes exactly those rows."""
        if CUSTOMER_COLUMN in names:
            row_filter: Any = EqualTo(CUSTOMER_COLUMN, customer_id)
            found = table.scan(row_filter=row_filter, selected_fields=(CUSTOMER_COLUMN, *extra)).to_arrow().to_pylist()
        else:
            rows = table.scan(selected_fields=("dlq_id", "payload", *extra)).to_arrow().to_pylist()
            found = [r for r in rows if payload_names_customer(r["payload"], customer_id)]
            row_filter = In("dlq_id", sorted({r["dlq_id"] for r in found}))
        days = {r[day] for r in found} if day else set()
        if days and None not in days:
            row_filter = And(row_filter, In(day, sorted(days)))
        return len(found), row_filter

    def count_and_delete() -> int | None:
        table.refresh()
        snapshot = table.current_snapshot()
        if snapshot is None:
            return None
        if (snapshot.summary or {}).get("total-data-files") == "0":
            return 0  # no rows now (scanning a table without data files fails in pyarrow); its history may have
        if dry_run:
            return int(matching()[0])

        def delete() -> int:
            # Found again on each attempt: a conflict means files were added or rewritten since the last look.
            table.refresh()
            n, row_filter = matching()
            if n:
                table.delete(row_filter, snapshot_properties={ERASURE_KEY: datetime.now(timezone.utc).isoformat()})
            return n
        return int(_retry(delete))

    # Counted again on a retry only when nothing was deleted: a failed attempt commits nothing.
    started = time.monotonic()
    n = _read_again(count_and_delete)
    deleted_at = time.monotonic()
    purge = None
    if n is not None:
        # Always: a repeated request also expires what the job's last commit kept alive the first time.
        purge = _read_again(lambda: _purge_history(table, dry_run, erasing=dry_run and n > 0))
    log.info("lake.%s: %d row(s) %s in %.1f s (%s %.1f s, history %.1f s: %s)",
             table.name()[-1], n or 0, "counted" if dry_run else "removed", time.monotonic() - started,
             "count" if dry_run else "count and delete", deleted_at - started, time.monotonic() - deleted_at, purge)
    return int(n or 0), purge


def erase_lake(settings: Settings, customer_id: str, report: ErasureReport, cat: Any = None) -> None:
    """Every lake table of the namespace with a customer_id column, and the dead letters (counted only when
    ``report.dry_run``)."""
    if cat is None:
        from loanrisk.lake import catalog
        cat = catalog(settings)
    ns = settings.catalog.namespace
    for ident in cat.list_tables(ns):
        name = f"lake.{ident[-1]}"
        try:
            n, purge = _erase_lake_table(cat.load_table(ident), customer_id, report.dry_run)
        except Exception as exc:  # noqa: BLE001 - reported per table, the others still run
            report.failed[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
            continue
        if n >= 0:
            report.removed[name] = n
        if purge is not None:
            report.history[name] = purge


def erase_serving(settings: Settings, customer_id: str, report: ErasureReport) -> None:
    """Every table of the serving database's public schema with a customer_id column."""
    import psycopg
    from psycopg import sql
    pg = settings.postgres
    try:
        with psycopg.connect(pg.dsn(pg.serving_db), autocommit=False) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND column_name = %s ORDER BY table_name", (CUSTOMER_COLUMN,)).fetchall()]
            for table in tables:
                if report.dry_run:
                    row = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                        sql.Identifier(table), sql.Identifier(CUSTOMER_COLUMN)), (customer_id,)).fetchone()
                    report.removed[f"postgres.{table}"] = int(row[0]) if row else 0
                    continue
                cur = conn.execute(sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                    sql.Identifier(table), sql.Identifier(CUSTOMER_COLUMN)), (customer_id,))
                report.removed[f"postgres.{table}"] = cur.rowcount
            if report.dry_run:
                conn.rollback()
            else:
                conn.commit()
    except psycopg.Error as exc:
        report.failed["postgres"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"


def erase_warehouse(settings: Settings, customer_id: str, report: ErasureReport) -> None:
    """Every table of the Snowflake schema with a CUSTOMER_ID column (found via INFORMATION_SCHEMA)."""
    sf = settings.snowflake
    try:
        from warehouse.connection import connect
    except ImportError:
        report.skipped["snowflake"] = "the warehouse package is not installed"
        return
    try:
        conn = connect(settings)
    except Exception as exc:  # noqa: BLE001 - the connector raises many types
        report.failed["snowflake"] = f"cannot connect: {type(exc).__name__}: {str(exc)[:200]}"
        return
    try:
        cur = conn.cursor()
        cur.execute("SELECT table_name FROM information_schema.columns WHERE UPPER(table_schema) = %s "
                    "AND UPPER(column_name) = %s ORDER BY table_name", (sf.schema_name.upper(), CUSTOMER_COLUMN.upper()))
        tables = [r[0] for r in cur.fetchall()]
        for table in tables:
            qualified = f'"{sf.database}"."{sf.schema_name}"."{table}"'.upper()
            if report.dry_run:
                cur.execute(f"SELECT COUNT(*) FROM {qualified} WHERE CUSTOMER_ID = %s", (customer_id,))
                report.removed[f"snowflake.{table}"] = int(cur.fetchone()[0])
                continue
            cur.execute(f"DELETE FROM {qualified} WHERE CUSTOMER_ID = %s", (customer_id,))
            report.removed[f"snowflake.{table}"] = int(cur.rowcount or 0)
        if not report.dry_run:
            conn.commit()
        if not tables:
            report.skipped["snowflake"] = f"no table with a CUSTOMER_ID column in {sf.database}.{sf.schema_name}"
    except Exception as exc:  # noqa: BLE001
        report.failed["snowflake"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        conn.close()


def erase_exports(settings: Settings, customer_id: str, report: ErasureReport) -> None:
    """Remove the customer's records from every file in the export ledger (loanrisk/exports.py) that still exists.

    Each file is rewritten beside itself (0600) and renamed over the original, so a reader never sees half of it.
    A line that is not a JSON record is kept unless it names the customer as a whole token.
    """
    import os

    from loanrisk.exports import exported_files
    from loanrisk.files import write_private
    for entry in exported_files(settings):
        path = Path(entry["path"])
        name = f"export.{path.name}"
        if not path.is_file():
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        except OSError as exc:
            report.failed[name] = f"cannot read {path}: {exc.strerror}"
            continue
        kept = [line for line in lines if not _line_names_customer(line, customer_id)]
        report.removed[name] = len(lines) - len(kept)
        if report.dry_run or len(kept) == len(lines):
            continue
        temp = path.with_name(f".{path.name}.erasing")
        write_private(temp, "".join(kept))
        os.replace(temp, path)


def _line_names_customer(line: str, customer_id: str) -> bool:
    """Whether one exported line (a JSON record whose "event" is the original) names ``customer_id``."""
    try:
        record = json.loads(line)
    except ValueError:
        return payload_names_customer(line, customer_id)
    event = record.get("event") if isinstance(record, dict) else record
    return payload_names_customer(event if isinstance(event, str) else json.dumps(event), customer_id)


def erase_customer(settings: Settings, customer_id: str, *, warehouse: bool = True,
                   dry_run: bool = False) -> ErasureReport:
    """Remove ``customer_id``'s rows from the lake, the serving database, exported files and (unless off) Snowflake.

    ``dry_run`` counts the rows each table holds of the customer and changes nothing.
    """
    if not customer_id.strip():
        raise ErasureError("an erasure needs a customer id")
    report = ErasureReport(customer_id, dry_run=dry_run)
    erase_lake(settings, customer_id, report)
    erase_serving(settings, customer_id, report)
    erase_exports(settings, customer_id, report)
    if warehouse:
        erase_warehouse(settings, customer_id, report)
    else:
        report.skipped["snowflake"] = "--no-warehouse"
    if not dry_run:
        # Recorded even when a sink failed: the request stands, and the replay applies it again.
        from erasure.ledger import record_erasure
        record_erasure(settings, customer_id)
    return report


@dataclass
class Replay:
    """What a replay of the ledger did: a report per erasure applied again, and how many entries were forgotten."""

    reports: list[ErasureReport]
    forgotten: int = 0
    restore_points_known: bool = True


def _restore_point_times(settings: Settings) -> list[float] | None:
    """When each checkpoint and savepoint of the risk job completed; None when their storage cannot be listed."""
    from jobs.params import RISK_JOB_NAME
    from stack.recovery import restore_points
    try:
        return [p.completed_at for p in restore_points(settings, RISK_JOB_NAME)]
    except Exception:  # noqa: BLE001 - unreachable storage: the retention rule stands in (erasure/ledger.py)
        return None


def replay_erasures(settings: Settings, *, warehouse: bool = True, dry_run: bool = False,
                    now: float | None = None) -> Replay:
    """Apply again every erasure of the ledger that a source could still undo (erasure/ledger.py), then forget the
    entries none can (not in a dry run). The ledger keeps each one's first time, so a replay does not extend it."""
    from erasure.ledger import due, erasures, forget_past, record_erasure
    points = _restore_point_times(settings)
    first = {e["customer_id"]: e["erased_at"] for e in erasures(settings)}
    reports = []
    for customer_id in due(settings, now, points):
        reports.append(erase_customer(settings, customer_id, warehouse=warehouse, dry_run=dry_run))
        if not dry_run:
            record_erasure(settings, customer_id, at=first[customer_id])
    forgotten = 0 if dry_run else forget_past(settings, now, points)
    return Replay(reports, forgotten, points is not None)
