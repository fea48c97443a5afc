"""Lake upkeep on a local pyiceberg catalog: compaction keeps every row, expiry and orphan cleanup stay safe."""

from __future__ import annotations

import os
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from loanrisk.lake import FLINK_CHECKPOINT_KEY, job_commit_chain
from prefect_flows.lake_upkeep import (
    compact, compaction_candidates, expire_snapshots, local_lister_deleter, referenced_files, remove_orphans,
    rewrite_files,
)

LATER = timedelta(hours=2)  # every file is older than the default safety age then


@pytest.fixture()
def table(tmp_path: Path):
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


def _rows(tbl) -> list[tuple]:
    t = tbl.refresh().scan().to_arrow()
    return sorted(zip(t["id"].to_pylist(), t["v"].to_pylist(), t["d"].to_pylist()))


def test_compaction_rewrites_small_files_into_one_per_partition_and_keeps_every_row(table) -> None:
    before, files_before = _rows(table), table.inspect.files().num_rows
    later = datetime.now(timezone.utc) + timedelta(hours=2)  # every file is older than the safety age then
    report = compact(table, min_files=3, now=later)
    after = table.refresh()
    assert _rows(after) == before
    files = after.inspect.files()
    assert report.compacted_partitions == 2 and report.files_before == files_before > 2
    assert files.num_rows == 2


def test_compaction_leaves_partitions_with_young_files_alone(table) -> None:
    files_before = table.inspect.files().num_rows
    report = compact(table, min_files=3)  # files were written just now: younger than the default hour
    assert report.compacted_partitions == 0
    assert table.refresh().inspect.files().num_rows == files_before


def test_the_live_days_old_files_are_compacted_while_the_job_keeps_adding_young_ones(table) -> None:
    """The live day's partition always has files from the last checkpoints: its old ones are compacted anyway (the
    partition used to wait until every file was old, that is the next day)."""
    live = date(2018, 1, 1)
    _append(table, [100, 101], live)
    time.sleep(2.5)  # the files above, and the fixture's, are older than 2 s now
    for i in (200, 202):
        _append(table, [i, i + 1], live)  # the latest checkpoints' files
    young = _live_files(table.refresh())[-2:]
    report = compact(table.refresh(), min_files=4, min_file_age=timedelta(seconds=2))  # day 2 has only 3 files
    files = _live_files(table.refresh())
    assert (report.compacted_partitions, report.files_before, report.files_after) == (1, 7, 1)
    assert set(young) <= set(files), "a file younger than the safety age was rewritten"
    assert sorted(d for _, d in files if d == live) == [live] * 3  # one compacted file and the two young ones
    assert len(_rows(table)) == 18


def _live_files(tbl) -> list[tuple[str, date]]:
    """Path and day partition of each live data file, in commit order."""
    entries = sorted((e for m in tbl.current_snapshot().manifests(tbl.io)
                      for e in m.fetch_manifest_entry(tbl.io, discard_deleted=True)), key=lambda e: e.sequence_number)
    return [(e.data_file.file_path, date(1970, 1, 1) + timedelta(days=e.data_file.partition[0])) for e in entries]


def test_small_files_are_rewritten_in_runs_of_bounded_size_and_large_files_stay(table) -> None:
    from prefect_flows.lake_upkeep import bin_pack
    day = date(2018, 1, 1)
    big = pa.table({"id": pa.array(range(1000, 21000), pa.int64()), "v": [f"x{i:08d}" for i in range(20000)],
                    "d": [day] * 20000})
    table.append(big)
    sizes = {p: s for p, s in zip(table.inspect.files().column("file_path").to_pylist(),
                                  table.inspect.files().column("file_size_in_bytes").to_pylist())}
    small = max(s for s in sizes.values() if s < 10_000)
    large = [p for p, s in sizes.items() if s > 10_000]
    group = 2 * small + small // 2  # two small files a run
    assert len(large) == 1 and sizes[large[0]] > group * 3 // 4
    before = _rows(table)
    report = compact(table, min_files=3, now=datetime.now(timezone.utc) + LATER, group_bytes=group)
    after = table.refresh()
    assert _rows(after) == before
    paths = after.inspect.files().column("file_path").to_pylist()
    assert large[0] in paths, "a file above three quarters of the run size was rewritten"
    # day 1: six small files -> runs of two; day 2: three small files -> a run of two and one left alone
    assert (report.files_before, report.files_after) == (8, 4) and len(paths) == 1 + 3 + 2
    assert [len(g) for g in bin_pack([type("F", (), {"file_size_in_bytes": n})() for n in (5, 5, 5, 20, 1)], 10)] \
        == [2, 1, 1, 1]


def test_a_run_is_written_as_one_file_whatever_the_tables_arrow_target_size(table) -> None:
    """pyiceberg cuts its writes at write.target-file-size-bytes of Arrow: cut there, a run's output would be small
    files again, and every run would rewrite them."""
    with table.transaction() as tx:
        tx.set_properties({"write.target-file-size-bytes": "100"})
    before = _rows(table)
    report = compact(table.refresh(), min_files=3, now=datetime.now(timezone.utc) + LATER)
    assert (report.compacted_partitions, report.files_after) == (2, 2) and _rows(table) == before
    again = compact(table.refresh(), min_files=1, now=datetime.now(timezone.utc) + LATER)
    assert again.files_before == 0, "a run's own output was rewritten"


def test_compaction_replaces_nothing_when_the_rows_read_do_not_match_the_manifests(table, monkeypatch) -> None:
    from pyiceberg.io.pyarrow import ArrowScan
    before, files = _rows(table), table.inspect.files().num_rows
    monkeypatch.setattr(ArrowScan, "to_table", lambda self, tasks: pa.table({"id": pa.array([], pa.int64())}))
    with pytest.raises(RuntimeError, match="compaction read 0 rows from"):
        compact(table, min_files=3, now=datetime.now(timezone.utc) + LATER)
    monkeypatch.undo()
    assert _rows(table) == before and table.refresh().inspect.files().num_rows == files


def _append(tbl, ids: list[int], day: date, props: dict[str, str] | None = None) -> None:
    """Another writer's commit (the running job's, when ``props`` holds its checkpoint summary)."""
    tbl.refresh().append(pa.table({"id": pa.array(ids, pa.int64()), "v": [f"late{i}" for i in ids],
                                   "d": [day] * len(ids)}), snapshot_properties=props or {})


def _compacted_files(tbl) -> tuple[list, list]:
    """The day-1 partition's files as compaction would read them, and their rows written as one new file."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files
    candidates = compaction_candidates(tbl, 3, timedelta(hours=1), datetime.now(timezone.utc) + LATER)
    old = max(candidates.values(), key=len)  # 2018-01-01: a row of every append
    rows = tbl.scan(row_filter="d = '2018-01-01'").to_arrow()
    assert len(old) == 6 and rows.num_rows == 9
    return old, list(_dataframe_to_data_files(tbl.metadata, rows, tbl.io))


def test_a_commit_landing_while_compaction_runs_is_kept(table) -> None:
    old, new = _compacted_files(table)
    _append(table, [100, 101], date(2018, 1, 1))  # the job commits into the same partition meanwhile
    assert rewrite_files(table, old, new)
    ids = [r[0] for r in _rows(table)]
    assert sorted(ids) == sorted(list(range(12)) + [100, 101])
    assert {f.file_path for f in new} <= set(table.refresh().inspect.files().column("file_path").to_pylist())


def test_compaction_gives_up_when_a_file_it_replaces_was_rewritten_meanwhile(table) -> None:
    from pyiceberg.expressions import EqualTo
    old, new = _compacted_files(table)
    table.refresh().delete(EqualTo("id", 0))  # an erasure rewrites one of the files compaction read
    assert not rewrite_files(table, old, new)
    ids = [r[0] for r in _rows(table)]
    assert 0 not in ids and len(ids) == 11, "the erased row came back or a row was lost"


def test_expiry_keeps_the_chain_back_to_the_jobs_last_commit(table) -> None:
    _append(table, [200], date(2018, 1, 3), {FLINK_CHECKPOINT_KEY: "41", "flink.job-id": "job"})
    job_commit = table.refresh().current_snapshot().snapshot_id
    _append(table, [201], date(2018, 1, 3))  # e.g. a redrive written after the job's last commit
    compact(table.refresh(), min_files=3, now=datetime.now(timezone.utc) + LATER)
    chain = job_commit_chain(table.refresh())
    assert job_commit in chain and len(chain) >= 3
    expire_snapshots(table.refresh(), timedelta(hours=1), now=datetime.now(timezone.utc) + timedelta(hours=3))
    left = {s.snapshot_id for s in table.refresh().snapshots()}
    assert set(chain) <= left and len(left) == len(chain), "expiry broke the chain or kept more than it"
    assert len(_rows(table)) == 14


def test_expiry_keeps_young_snapshots_and_the_current_one(table) -> None:
    n = len(table.snapshots())
    expire_snapshots(table, timedelta(hours=1))
    assert len(table.refresh().snapshots()) == n
    report = expire_snapshots(table.refresh(), timedelta(hours=1), now=datetime.now(timezone.utc) + timedelta(hours=3))
    fresh = table.refresh()
    assert report.expired_snapshots == n - 1
    assert [s.snapshot_id for s in fresh.snapshots()] == [fresh.current_snapshot().snapshot_id]
    assert len(_rows(fresh)) == 12


def test_expiry_keeps_the_newest_append_for_freshness_after_a_compaction_replaced_it_as_head(table) -> None:
    from loanrisk.lake import newest_append
    last_append = table.current_snapshot().snapshot_id
    compact(table, min_files=3, now=datetime.now(timezone.utc) + LATER)
    head = table.refresh().current_snapshot()
    assert head.snapshot_id != last_append and head.summary.operation.value == "overwrite"
    assert newest_append(table.refresh()) == last_append
    expire_snapshots(table.refresh(), timedelta(hours=1), now=datetime.now(timezone.utc) + timedelta(hours=3))
    left = {s.snapshot_id for s in table.refresh().snapshots()}
    assert left == {head.snapshot_id, last_append}
    assert len(_rows(table)) == 12


def test_orphan_cleanup_deletes_only_old_unreferenced_files(table) -> None:
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


def test_expiry_looks_again_when_another_maintainer_expired_a_snapshot_first(table) -> None:
    """An erasure's history purge may expire snapshots a maintenance pass has just listed (a stale table object)."""
    later = datetime.now(timezone.utc) + timedelta(hours=3)
    stale = table.catalog.load_table("ns.t")
    first = table.snapshots()[0].snapshot_id
    table.maintenance.expire_snapshots().by_ids([first]).commit()  # the other maintainer
    report = expire_snapshots(stale, timedelta(hours=1), now=later)
    fresh = table.refresh()
    assert [s.snapshot_id for s in fresh.snapshots()] == [fresh.current_snapshot().snapshot_id]
    assert report.expired_snapshots == 4 and len(_rows(fresh)) == 12


def test_expiry_looks_again_when_the_job_commits_between_the_catalogs_load_and_its_swap(table) -> None:
    """The catalog swaps the metadata pointer only if no writer moved it since its own load: a job's checkpoint
    commit landing in that window fails the expiry's commit, which is tried again on the moved table."""
    cat = table.catalog
    stage = cat._update_and_stage_table
    raced: list[int] = []

    def stage_then_the_job_commits(*args, **kwargs):
        staged = stage(*args, **kwargs)
        if not raced:  # once: the job appends between this load and the swap
            raced.append(1)
            _append(cat.load_table("ns.t"), [300], date(2018, 1, 4), {FLINK_CHECKPOINT_KEY: "7", "flink.job-id": "job"})
        return staged

    cat._update_and_stage_table = stage_then_the_job_commits
    report = expire_snapshots(table, timedelta(hours=1), now=datetime.now(timezone.utc) + timedelta(hours=3))
    fresh = table.refresh()
    assert raced and report.expired_snapshots == 6  # the first six appends; the job's commit is current
    assert [s.snapshot_id for s in fresh.snapshots()] == [fresh.current_snapshot().snapshot_id]
    assert len(_rows(fresh)) == 13
