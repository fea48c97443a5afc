"""Lake upkeep on a local pyiceberg catalog: compaction keeps every row, expiry and orphan cleanup stay safe."""

from __future__ import annotations

import os
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from prefect_flows.lake_upkeep import compact, expire_snapshots, local_lister_deleter, referenced_files, remove_orphans


@pytest.fixture()
def table(tmp_path: Path):  # noqa: ANN201 - pyiceberg Table
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import DateType, LongType, NestedField, StringType

    cat = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=f"file://{tmp_path}/wh")
    cat.create_namespace("ns")
    schema = Schema(NestedField(1, "id", LongType(), required=False), NestedField(2, "v", StringType(), required=False),
                    NestedField(3, "d", DateType(), required=False))
    spec = PartitionSpec(PartitionField(source_id=3, field_id=1000, transform=IdentityTransform(), name="d"))
    tbl = cat.create_table("ns.t", schema=schema, partition_spec=spec)
    for i in range(6):  # six small appends into two day partitions
        tbl.append(pa.table({"id": pa.array([2 * i, 2 * i + 1], pa.int64()), "v": [f"a{i}", f"b{i}"],
                             "d": [date(2018, 1, 1), date(2018, 1, 1 + i % 2)]}))
    return tbl


def _rows(tbl) -> list[tuple]:  # noqa: ANN001
    t = tbl.refresh().scan().to_arrow()
    return sorted(zip(t["id"].to_pylist(), t["v"].to_pylist(), t["d"].to_pylist()))


def test_compaction_rewrites_small_files_into_one_per_partition_and_keeps_every_row(table) -> None:  # noqa: ANN001
    before, files_before = _rows(table), table.inspect.files().num_rows
    later = datetime.now(timezone.utc) + timedelta(hours=2)  # every file is older than the safety age then
    report = compact(table, min_files=3, now=later)
    after = table.refresh()
    assert _rows(after) == before
    files = after.inspect.files()
    assert report.compacted_partitions == 2 and report.files_before == files_before > 2
    assert files.num_rows == 2


def test_compaction_leaves_partitions_with_young_files_alone(table) -> None:  # noqa: ANN001
    files_before = table.inspect.files().num_rows
    report = compact(table, min_files=3)  # files were written just now: younger than the default hour
    assert report.compacted_partitions == 0
    assert table.refresh().inspect.files().num_rows == files_before


def test_expiry_keeps_young_snapshots_and_the_current_one(table) -> None:  # noqa: ANN001
    n = len(table.snapshots())
    expire_snapshots(table, timedelta(hours=1))
    assert len(table.refresh().snapshots()) == n
    report = expire_snapshots(table.refresh(), timedelta(hours=1), now=datetime.now(timezone.utc) + timedelta(hours=3))
    fresh = table.refresh()
    assert report.expired_snapshots == n - 1
    assert [s.snapshot_id for s in fresh.snapshots()] == [fresh.current_snapshot().snapshot_id]
    assert len(_rows(fresh)) == 12


def test_orphan_cleanup_deletes_only_old_unreferenced_files(table) -> None:  # noqa: ANN001
    data_dir = Path(table.location().replace("file://", "")) / "data"
    old_orphan, young_orphan = data_dir / "old-orphan.parquet", data_dir / "young-orphan.parquet"
    for p in (old_orphan, young_orphan):
        p.write_bytes(b"not referenced")
    stamp = time.time() - 3 * 86400
    os.utime(old_orphan, (stamp, stamp))
    lister, deleter = local_lister_deleter()
    report = remove_orphans(table, lister, deleter, timedelta(hours=24))
    assert report.orphans_deleted == 1
    assert not old_orphan.exists() and young_orphan.exists()
    refs = referenced_files(table.refresh())
    assert all(Path(p.replace("file://", "")).exists() for p in refs)
    assert len(_rows(table)) == 12
