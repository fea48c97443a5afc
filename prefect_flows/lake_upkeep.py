"""Iceberg upkeep with pyiceberg: small-file compaction per partition, snapshot expiry, orphan-file cleanup.

Safety: every commit asserts the branch head it read (a concurrent Flink commit makes ours fail and
nothing changes); snapshots younger than ``min_snapshot_age`` and the current one are never expired;
only files older than ``min_orphan_age`` and unreferenced by every live snapshot and metadata file are
deleted (a writer's not-yet-committed files are young). pyiceberg 0.12 has no rewrite_data_files:
compaction reads a partition and replaces it in one overwrite commit, and skips partitions with
delete files or with files younger than ``min_file_age``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

Lister = Callable[[str], Iterable[tuple[str, datetime]]]
Deleter = Callable[[str], None]


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


def _partition_key(partition: Any) -> tuple:
    """A hashable key of a data file's partition record."""
    return tuple(partition) if partition is not None else ()


def compact(table: Any, min_files: int = 8, min_file_age: timedelta = timedelta(hours=1), max_partitions: int = 10,
            now: datetime | None = None, report: UpkeepReport | None = None) -> UpkeepReport:
    """Rewrite partitions holding at least ``min_files`` data files (all older than ``min_file_age``) as one commit each."""
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.expressions import AlwaysTrue, And, EqualTo, IsNull
    from pyiceberg.manifest import DataFileContent

    report = report or UpkeepReport(str(table.name()))
    now = now or datetime.now(timezone.utc)
    snap = table.current_snapshot()
    spec = table.spec()
    if snap is None or not spec.fields or any(f.transform.__class__.__name__ != "IdentityTransform"
                                              for f in spec.fields):
        report.notes.append("compaction skipped (empty or not identity-partitioned)")
        return report
    groups: dict[tuple, list[Any]] = {}
    blocked: set[tuple] = set()
    cutoff_ms = int((now - min_file_age).timestamp() * 1000)
    for manifest in snap.manifests(table.io):
        for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            key = _partition_key(e.data_file.partition)
            added = table.snapshot_by_id(e.snapshot_id) if e.snapshot_id is not None else None
            young = added is not None and added.timestamp_ms > cutoff_ms  # an expired snapshot is old
            if e.data_file.content != DataFileContent.DATA or young:
                blocked.add(key)
            groups.setdefault(key, []).append(e.data_file)
    names = [table.schema().find_field(f.source_id).name for f in spec.fields]
    todo = [(k, files) for k, files in groups.items() if len(files) >= min_files and k not in blocked]
    for key, files in sorted(todo, key=lambda kv: -len(kv[1]))[:max_partitions]:
        expr: Any = AlwaysTrue()
        for name, value in zip(names, key):
            expr = And(expr, IsNull(name) if value is None else EqualTo(name, value))
        fresh = table.refresh()
        rows = fresh.scan(row_filter=expr, snapshot_id=snap.snapshot_id).to_arrow()
        try:
            fresh.overwrite(rows, overwrite_filter=expr)
        except CommitFailedException:
            report.notes.append(f"partition {key} changed during compaction; left for the next run")
            continue
        report.compacted_partitions += 1
        report.files_before += len(files)
        report.files_after += 1 if rows.num_rows else 0
    return report


def expire_snapshots(table: Any, min_age: timedelta, now: datetime | None = None,
                     report: UpkeepReport | None = None) -> UpkeepReport:
    """Expire snapshots older than ``min_age`` (never the current one or any branch/tag head)."""
    report = report or UpkeepReport(str(table.name()))
    now = now or datetime.now(timezone.utc)
    current = table.current_snapshot()
    old = [s.snapshot_id for s in table.snapshots()
           if s.timestamp_ms < int((now - min_age).timestamp() * 1000)
           and (current is None or s.snapshot_id != current.snapshot_id)]
    if old:
        table.maintenance.expire_snapshots().older_than(now - min_age).commit()
        report.expired_snapshots += len(old)
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
    fresh = table.refresh()
    refs = {_norm(p) for p in referenced_files(fresh)}
    for path, modified in lister(fresh.location()):
        if _norm(path) not in refs and now - modified > min_age:
            deleter(path)
            report.orphans_deleted += 1
    return report


def _norm(path: str) -> str:
    """A path compared without scheme variants (s3a:// and s3:// alike, file:// stripped)."""
    return path.replace("s3a://", "s3://").replace("file://", "")


def s3_lister_deleter(s3_settings: Any) -> tuple[Lister, Deleter]:
    """List and delete objects on the configured S3 store (boto3)."""
    from loanrisk.objectstore import s3_client

    client = s3_client(s3_settings)

    def split(uri: str) -> tuple[str, str]:
        bucket, _, key = uri.split("://", 1)[1].partition("/")
        return bucket, key

    def lister(location: str) -> Iterable[tuple[str, datetime]]:
        bucket, prefix = split(location.rstrip("/") + "/")
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield f"s3://{bucket}/{obj['Key']}", obj["LastModified"]

    def deleter(uri: str) -> None:
        bucket, key = split(uri)
        client.delete_object(Bucket=bucket, Key=key)

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

    return lister, lambda path: os.remove(_norm(path))
