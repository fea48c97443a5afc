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
from typing import Any, NamedTuple

from loanrisk.lake import COMPACTION_PROPERTY

Lister = Callable[[str], Iterable[tuple[str, datetime]]]
ORPHAN_BATCH = 1000  # paths handed to the deleter at a time
ATTEMPTS = 8  # looks at a table another writer or maintainer keeps moving, before a step gives up
Deleter = Callable[[list[str]], None]  # deletes a batch of paths
COMPACTION_GROUP_BYTES = 32 * 2 ** 20  # prefect.compaction_file_mb's default


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


class _Live(NamedTuple):
    """A live file of a snapshot: the file, the snapshot that added it (None once expired) and its data sequence
    number (the order files were committed in)."""

    file: Any
    snapshot_id: int | None
    sequence: int


def _partition_files(table: Any, snapshot: Any) -> dict[tuple, list[_Live]]:
    """Live data and delete files of ``snapshot`` by partition."""
    groups: dict[tuple, list[_Live]] = {}
    for manifest in snapshot.manifests(table.io):
        for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            groups.setdefault(_partition_key(e.data_file.partition), []).append(
                _Live(e.data_file, e.snapshot_id, e.sequence_number or 0))
    return groups


def compaction_candidates(table: Any, min_files: int, min_file_age: timedelta, now: datetime,
                          small_bytes: int | None = None) -> dict[tuple, list[Any]]:
    """Per partition without delete files: its data files older than ``min_file_age`` (and smaller than
    ``small_bytes``, if given), in commit order, when there are at least ``min_files`` of them.

    The young files of a partition stay out rather than the partition: the live day's partition gets a file per
    writer at every checkpoint all day, and waiting for all of them to be old would leave it to the next day.
    """
    from pyiceberg.manifest import DataFileContent
    snap = table.current_snapshot()
    if snap is None:
        return {}
    cutoff_ms = int((now - min_file_age).timestamp() * 1000)
    todo: dict[tuple, list[Any]] = {}
    for key, entries in _partition_files(table, snap).items():
        if any(e.file.content != DataFileContent.DATA for e in entries):
            continue
        old = [e for e in sorted(entries, key=lambda e: e.sequence)
               if not _young(table, e.snapshot_id, cutoff_ms)
               and (small_bytes is None or e.file.file_size_in_bytes < small_bytes)]
        if len(old) >= min_files:
            todo[key] = [e.file for e in old]
    return todo


def _young(table: Any, snapshot_id: int | None, cutoff_ms: int) -> bool:
    """Whether the snapshot that added a file is younger than the cutoff (an expired snapshot is old)."""
    added = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else None
    return added is not None and added.timestamp_ms > cutoff_ms


def bin_pack(files: list[Any], max_bytes: int) -> list[list[Any]]:
    """``files`` cut, in their order, into runs of at most ``max_bytes`` together (a larger file alone)."""
    groups: list[list[Any]] = []
    size = max_bytes + 1
    for f in files:
        if size + f.file_size_in_bytes > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(f)
        size += f.file_size_in_bytes
    return groups


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
        live = {e.file.file_path: e.file for entries in (_partition_files(head, snap) if snap else {}).values()
                for e in entries}
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
            now: datetime | None = None, report: UpkeepReport | None = None,
            group_bytes: int = COMPACTION_GROUP_BYTES) -> UpkeepReport:
    """Rewrite the small files of partitions holding at least ``min_files`` of them older than ``min_file_age``.

    A small file is under three quarters of ``group_bytes`` (Iceberg's bin-pack default for its minimum file
    size); the small files are rewritten in commit order, in runs of at most ``group_bytes`` of Parquet, one new
    file each: a run is held in memory as Arrow while it is rewritten, and a new file covers a stretch of arrival
    times, so scans by ``ingested_at`` still skip files by their column bounds. A run's file of less than three
    quarters of ``group_bytes`` is small again, and joins the next run.
    """
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
    from pyiceberg.table import FileScanTask

    report = report or UpkeepReport(str(table.name()))
    now = now or datetime.now(timezone.utc)
    spec = table.spec()
    if table.current_snapshot() is None or not spec.fields or any(
            f.transform.__class__.__name__ != "IdentityTransform" for f in spec.fields):
        report.notes.append("compaction skipped (empty or not identity-partitioned)")
        return report
    todo = compaction_candidates(table, min_files, min_file_age, now, small_bytes=group_bytes * 3 // 4)
    # pyiceberg cuts what it writes at write.target-file-size-bytes of Arrow, several times the Parquet a run reads:
    # cut there, a run's output would be small files again, rewritten at every run.
    one_file = table.metadata.model_copy(update={"properties": {
        **table.metadata.properties, "write.target-file-size-bytes": str(2 ** 62)}})
    for key, files in sorted(todo.items(), key=lambda kv: -len(kv[1]))[:max_partitions]:
        groups = [g for g in bin_pack(files, group_bytes) if len(g) > 1]
        rewritten = 0
        for group in groups:
            try:
                rows = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table(
                    [FileScanTask(f) for f in group])
            except FileNotFoundError:
                # Another maintainer (an erasure's history purge) removed a file this pass listed: the table
                # moved on, the next pass starts from its new head.
                break
            expected = sum(f.record_count for f in group)
            if rows.num_rows != expected:
                # Never replace files by fewer or more rows than their manifests count.
                raise RuntimeError(f"{table.name()}: compaction read {rows.num_rows} rows from {len(group)} files of "
                                   f"partition {key} whose manifests count {expected}; nothing replaced")
            new = list(_dataframe_to_data_files(one_file, rows, table.io)) if rows.num_rows else []
            if not rewrite_files(table, group, new):
                for f in new:
                    table.io.delete(f.file_path)  # never committed
                break
            rewritten += 1
            report.files_before += len(group)
            report.files_after += len(new)
        if rewritten:
            report.compacted_partitions += 1
        if rewritten < len(groups):
            report.notes.append(f"partition {key} changed during compaction; left for the next run")
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
