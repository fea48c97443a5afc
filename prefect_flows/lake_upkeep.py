"""Iceberg upkeep with pyiceberg: small-file compaction per partition, snapshot expiry, orphan-file cleanup.

Safety against the running job, which commits every checkpoint:
- compaction replaces exactly the data files it read (pyiceberg's overwrite with explicit file deletes):
  each attempt starts from the current head, pyiceberg checks that every replaced file is still live
  there, and the commit asserts that head; rows the job appended meanwhile stay, as their own files. A
  replaced file that another writer removed or rewrote meanwhile (an erasure, another compaction) ends
  the attempt without a change. Partitions with delete files are left alone (a rewritten file would
  escape deletes that applied to the old one);
- expiry keeps the current snapshot, every branch and tag head, and the chain back to the job's latest
  commit (loanrisk.lake.job_commit_chain), so a job restored from its last checkpoint finds what it
  committed;
- orphan cleanup deletes only files older than ``min_orphan_age`` that no live snapshot or metadata
  file references (a writer's not-yet-committed files are young).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from loanrisk.lake import COMPACTION_PROPERTY

Lister = Callable[[str], Iterable[tuple[str, datetime]]]
ORPHAN_BATCH = 1000  # paths handed to the deleter at a time
ATTEMPTS = 8  # looks at a table another writer or maintainer keeps moving, before a step gives up
Deleter = Callable[[list[str]], None]  # deletes a batch of paths


@dataclass
class UpkeepReport:
    """What one table's upkeep did."""

    table: str
    compacted_partitions: int = 0
    files_before: int = 0
    files_after: int = 0
    expired_snapshots: int = 0
    orphans_deleted: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for the log."""
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        return (f"{self.table}: compacted {self.compacted_partitions} partitions ({self.files_before} -> "
                f"{self.files_after} files), expired {self.expired_snapshots} snapshots, deleted "
                f"{self.orphans_deleted} orphan files{extra}")


def _pause(attempt: int) -> None:
    """Wait before looking again: 0.2 s, doubling, at most 5 s."""
    time.sleep(min(0.2 * 2 ** attempt, 5.0))


def _partition_key(partition: Any) -> tuple:
    """A hashable key of a data file's partition record."""
    return tuple(partition) if partition is not None else ()


def _partition_files(table: Any, snapshot: Any) -> dict[tuple, list[Any]]:
    """Live data and delete files of ``snapshot`` by partition."""
    groups: dict[tuple, list[Any]] = {}
    for manifest in snapshot.manifests(table.io):
        for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            groups.setdefault(_partition_key(e.data_file.partition), []).append((e.data_file, e.snapshot_id))
    return groups


def compaction_candidates(table: Any, min_files: int, min_file_age: timedelta, now: datetime) -> dict[tuple, list[Any]]:
    """Partitions worth compacting: at least ``min_files`` data files, all older than ``min_file_age``, no deletes."""
    from pyiceberg.manifest import DataFileContent
    snap = table.current_snapshot()
    if snap is None:
        return {}
    cutoff_ms = int((now - min_file_age).timestamp() * 1000)
    todo: dict[tuple, list[Any]] = {}
    for key, entries in _partition_files(table, snap).items():
        added = [table.snapshot_by_id(sid) if sid is not None else None for _, sid in entries]
        young = any(a is not None and a.timestamp_ms > cutoff_ms for a in added)  # an expired snapshot is old
        deletes = any(f.content != DataFileContent.DATA for f, _ in entries)
        if len(entries) >= min_files and not young and not deletes:
            todo[key] = [f for f, _ in entries]
    return todo


def _partition_filter(table: Any, key: tuple) -> Any:
    from pyiceberg.expressions import AlwaysTrue, And, EqualTo, IsNull
    names = [table.schema().find_field(f.source_id).name for f in table.spec().fields]
    expr: Any = AlwaysTrue()
    for name, value in zip(names, key):
        expr = And(expr, IsNull(name) if value is None else EqualTo(name, value))
    return expr


def rewrite_files(table: Any, old: list[Any], new: list[Any], attempts: int = ATTEMPTS) -> bool:
    """Replace data files ``old`` by ``new`` in one commit on the current head; False if ``old`` changed meanwhile.

    Each attempt is a fresh transaction on the refreshed head: pyiceberg refuses a delete of a file that is
    not live in its parent (``ValidationException``) and a commit whose head moved (``CommitFailedException``);
    the latter is retried, since appends by other writers do not touch the files replaced here. A manifest
    that vanished while the head was read (``FileNotFoundError``: an erasure's history purge expired that
    head and deleted its files meanwhile) is read again on the next head, before anything is committed.
    """
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    from pyiceberg.manifest import DataFileContent
    wanted = {f.file_path for f in old}
    for attempt in range(attempts):
        head = table.refresh()
        snap = head.current_snapshot()
        live = {f.file_path: f for entries in (_partition_files(head, snap) if snap else {}).values() for f, _ in entries}
        partitions = {_partition_key(f.partition) for f in old}
        if not wanted <= live.keys() or any(f.content != DataFileContent.DATA and _partition_key(f.partition)
                                            in partitions for f in live.values()):
            return False
        try:
            with head.transaction() as tx:
                with tx.update_snapshot(snapshot_properties=dict([COMPACTION_PROPERTY])).overwrite() as ow:
                    for f in old:
                        ow.delete_data_file(f)
                    for f in new:
                        ow.append_data_file(f)
            return True
        except (CommitFailedException, ValidationException, FileNotFoundError):
            _pause(attempt)  # another writer or maintainer came first: look again
    return False


def compact(table: Any, min_files: int = 8, min_file_age: timedelta = timedelta(hours=1), max_partitions: int = 10,
            now: datetime | None = None, report: UpkeepReport | None = None) -> UpkeepReport:
    """Rewrite partitions holding at least ``min_files`` data files (all older than ``min_file_age``) into one file each."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    report = report or UpkeepReport(str(table.name()))
    now = now or datetime.now(timezone.utc)
    snap = table.current_snapshot()
    spec = table.spec()
    if snap is None or not spec.fields or any(f.transform.__class__.__name__ != "IdentityTransform"
                                              for f in spec.fields):
        report.notes.append("compaction skipped (empty or not identity-partitioned)")
        return report
    todo = compaction_candidates(table, min_files, min_file_age, now)
    for key, files in sorted(todo.items(), key=lambda kv: -len(kv[1]))[:max_partitions]:
        try:
            rows = table.scan(row_filter=_partition_filter(table, key), snapshot_id=snap.snapshot_id).to_arrow()
        except FileNotFoundError:
            # Another maintainer (an erasure's history purge) expired the snapshot this pass read, and deleted
            # its files: the table moved on, the next pass starts from its new head.
            report.notes.append(f"partition {key} changed during compaction; left for the next run")
            break
        new = list(_dataframe_to_data_files(table.metadata, rows, table.io)) if rows.num_rows else []
        if not rewrite_files(table, files, new):
            for f in new:
                table.io.delete(f.file_path)  # never committed
            report.notes.append(f"partition {key} changed during compaction; left for the next run")
            continue
        report.compacted_partitions += 1
        report.files_before += len(files)
        report.files_after += len(new)
    return report


def expire_snapshots(table: Any, min_age: timedelta, now: datetime | None = None,
                     report: UpkeepReport | None = None, attempts: int = ATTEMPTS) -> UpkeepReport:
    """Expire snapshots older than ``min_age``, except branch and tag heads, the job's commit chain and the newest
    snapshot that appended rows (data_quality's freshness).

    Two races end an attempt, and the next one lists the snapshots again on the refreshed table: another
    maintainer (an erasure's history purge) expired some of them first (pyiceberg's ``ValueError`` "does not
    exist"), or a writer (the job's checkpoint commit) moved the table between the catalog's load and its
    swap (``CommitFailedException``).
    """
    from pyiceberg.exceptions import CommitFailedException

    from loanrisk.lake import expired_meanwhile, job_commit_chain, newest_append
    report = report or UpkeepReport(str(table.name()))
    now = now or datetime.now(timezone.utc)
    cutoff_ms = int((now - min_age).timestamp() * 1000)
    for attempt in range(attempts):
        keep = set(job_commit_chain(table)) | {ref.snapshot_id for ref in table.metadata.refs.values()}
        keep |= {newest_append(table)} - {None}
        old = [s.snapshot_id for s in table.snapshots() if s.timestamp_ms < cutoff_ms and s.snapshot_id not in keep]
        if not old:
            return report
        try:
            table.maintenance.expire_snapshots().by_ids(old).commit()
        except (ValueError, CommitFailedException) as exc:
            if isinstance(exc, ValueError) and not expired_meanwhile(exc) or attempt == attempts - 1:
                raise
            _pause(attempt)
            table.refresh()
            continue
        report.expired_snapshots += len(old)
        return report
    return report


def referenced_files(table: Any) -> set[str]:
    """Every file a live snapshot or the metadata still references: data, delete, manifest, manifest-list, metadata."""
    refs: set[str] = {table.metadata_location}
    refs |= {entry.metadata_file for entry in table.metadata.metadata_log}
    refs |= {s.statistics_path for s in getattr(table.metadata, "statistics", []) or []}
    for snap in table.snapshots():
        refs.add(snap.manifest_list)
        for m in snap.manifests(table.io):
            refs.add(m.manifest_path)
            refs |= {e.data_file.file_path for e in m.fetch_manifest_entry(table.io, discard_deleted=True)}
    return refs


def remove_orphans(table: Any, lister: Lister, deleter: Deleter, min_age: timedelta, now: datetime | None = None,
                   report: UpkeepReport | None = None) -> UpkeepReport:
    """Delete files under the table location that nothing references and that are older than ``min_age``."""
    report = report or UpkeepReport(str(table.name()))
    now = now or datetime.now(timezone.utc)
    for attempt in range(ATTEMPTS):
        fresh = table.refresh()
        try:
            refs = {_norm(p) for p in referenced_files(fresh)}
            break
        except FileNotFoundError:
            # A snapshot listed was expired and its files deleted by another maintainer meanwhile: list again
            # (never go on with a partial set, which would make live files look like orphans).
            if attempt == ATTEMPTS - 1:
                raise
            _pause(attempt)
    orphans = [path for path, modified in lister(fresh.location())
               if _norm(path) not in refs and now - modified > min_age]
    for start in range(0, len(orphans), ORPHAN_BATCH):
        deleter(orphans[start:start + ORPHAN_BATCH])
    report.orphans_deleted += len(orphans)
    return report


def _norm(path: str) -> str:
    """A path compared without scheme variants (s3a:// and s3:// alike, file:// stripped)."""
    return path.replace("s3a://", "s3://").replace("file://", "")


def s3_lister_deleter(s3_settings: Any) -> tuple[Lister, Deleter]:
    """List and delete objects on the configured S3 store (boto3)."""
    from loanrisk.objectstore import list_objects, s3_client

    client = s3_client(s3_settings)

    def split(uri: str) -> tuple[str, str]:
        bucket, _, key = uri.split("://", 1)[1].partition("/")
        return bucket, key

    def lister(location: str) -> Iterable[tuple[str, datetime]]:
        bucket, prefix = split(location.rstrip("/") + "/")
        for obj in list_objects(client, bucket, prefix):
            yield f"s3://{bucket}/{obj['Key']}", obj["LastModified"]

    def delete(uri: str) -> None:
        bucket, key = split(uri)
        client.delete_object(Bucket=bucket, Key=key)

    def deleter(uris: list[str]) -> None:
        # One request per object, several at a time: DeleteObjects needs a checksum header that some
        # S3-compatible servers (s3proxy) refuse.
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(delete, uris))

    return lister, deleter


def local_lister_deleter() -> tuple[Lister, Deleter]:
    """List and delete files of a local-filesystem warehouse (tests, file:// warehouses)."""
    import os
    from pathlib import Path

    def lister(location: str) -> Iterable[tuple[str, datetime]]:
        root = Path(_norm(location))
        for p in root.rglob("*"):
            if p.is_file():
                yield str(p), datetime.fromtimestamp(p.stat().st_mtime, timezone.utc)

    def deleter(paths: list[str]) -> None:
        for path in paths:
            os.remove(_norm(path))

    return lister, deleter
