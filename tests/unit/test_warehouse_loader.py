"""The exactly-once loader against the local Snowflake endpoint and a small local Iceberg catalog: incremental
appends, fall-back to a full MERGE after compaction, expiry or deletes, and crash/re-run without loss or duplicates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from loanrisk.settings import Settings
from tests.warehouse_support import local_lake, run_loader, snowflake_endpoint
from warehouse.connection import connect
from warehouse.ddl import iceberg_partition_spec, iceberg_schema, table
from warehouse.loader import loaded_snapshot, sync

T0 = datetime(2026, 1, 5, 8, 30, 0, 123456, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with snowflake_endpoint(Path(tmp_path_factory.mktemp("sf"))) as settings:
        yield settings


def repayments(lake_table, first: int, n: int) -> pa.Table:
    """``n`` repayment rows with ids from ``first``: microsecond timestamps, some NULL paid dates and balances."""
    rows = []
    for i in range(first, first + n):
        t = T0 + timedelta(hours=i, microseconds=i)
        rows.append({"event_id": f"e{i:06d}", "schema_version": 1, "event_time": t, "source": "synthetic",
                     "customer_id": f"c{i % 7}", "repayment_id": f"r{i}", "loan_id": f"l{i % 11}",
                     "installment_no": 1 + i % 12, "due_date": date(2026, 1, 1) + timedelta(days=i % 90),
                     "paid_date": None if i % 5 == 0 else date(2026, 2, 1), "currency": "USD",
                     "amount_due_minor": 10_000 + i, "amount_paid_minor": 0 if i % 5 == 0 else 10_000 + i,
                     "days_past_due": i % 70, "ingested_at": None if i % 9 == 0 else t + timedelta(seconds=1),
                     "event_date": t.date()})
    return pa.Table.from_pylist(rows, schema=lake_table.schema().as_arrow())


def new_lake(tmp_path: Path):
    lake = local_lake(tmp_path / "lake")
    return lake, lake.create_table("risk.raw_repayments", iceberg_schema("raw_repayments"))


def snowflake_rows(settings: Settings, name: str) -> list[tuple]:
    t = table(name)
    cols = ", ".join(f'"{c.name.upper()}"' for c in t.columns)
    with connect(settings) as conn:
        cur = conn.cursor()
        cur.execute(f'SELECT {cols} FROM "{t.name}"')
        return sorted(cur.fetchall(), key=lambda r: r[0])


def lake_rows(lake_table) -> list[tuple]:
    frame = lake_table.refresh().scan().to_arrow().to_pylist()
    return sorted((tuple(r.values()) for r in frame), key=lambda r: r[0])


@pytest.fixture
def fresh(endpoint: Settings) -> Settings:
    """The endpoint with no REPAYMENTS rows and no control rows for it (each test starts from nothing)."""
    with connect(endpoint) as conn:
        cur = conn.cursor()
        sync(endpoint, ["REPAYMENTS"], lake=_EmptyLake())
        cur.execute('DELETE FROM "REPAYMENTS"')
        cur.execute('DELETE FROM "LOADER_CONTROL"')
    return endpoint


class _EmptyLake:
    """A lake whose table has no snapshot: lets the fixture create the warehouse tables without loading."""

    def load_table(self, _name: str):
        class _T:
            def current_snapshot(self):
                return None
        return _T()


def test_first_sync_loads_every_row_with_exact_timestamps_and_nulls(fresh: Settings, tmp_path: Path) -> None:
    lake, tbl = new_lake(tmp_path)
    tbl.append(repayments(tbl, 0, 250))
    report = sync(fresh, ["raw_repayments"], lake=lake, batch_rows=100)
    assert [(r.mode, r.rows, r.batches) for r in report.tables] == [("full", 250, 3)]
    got = snowflake_rows(fresh, "REPAYMENTS")
    assert got == lake_rows(tbl)
    assert any(r[9] is None for r in got) and any(r[14] is None for r in got)  # NULL date and NULL timestamp


def test_later_syncs_read_only_the_appended_snapshots(fresh: Settings, tmp_path: Path) -> None:
    lake, tbl = new_lake(tmp_path)
    tbl.append(repayments(tbl, 0, 40))
    sync(fresh, ["REPAYMENTS"], lake=lake)
    tbl.append(repayments(tbl, 40, 30))
    tbl.append(repayments(tbl, 70, 5))
    report = sync(fresh, ["REPAYMENTS"], lake=lake, batch_rows=20)
    assert [(r.mode, r.rows, r.batches) for r in report.tables] == [("incremental", 35, 2)]
    assert snowflake_rows(fresh, "REPAYMENTS") == lake_rows(tbl)
    again = sync(fresh, ["REPAYMENTS"], lake=lake)
    assert [(r.mode, r.rows) for r in again.tables] == [("up-to-date", 0)]
    with connect(fresh) as conn:
        assert loaded_snapshot(conn.cursor(), table("REPAYMENTS")) == tbl.current_snapshot().snapshot_id


def test_a_compaction_is_stepped_over_and_the_next_load_stays_incremental(fresh: Settings, tmp_path: Path) -> None:
    from prefect_flows.lake_upkeep import compact
    lake = local_lake(tmp_path / "lake")
    schema = iceberg_schema("raw_repayments")
    by_day = iceberg_partition_spec("raw_repayments", schema)
    tbl = lake.create_table("risk.raw_repayments", schema, partition_spec=by_day)  # as the job's: by event day
    for first in (0, 30, 60):
        tbl.append(repayments(tbl, first, 30))
    sync(fresh, ["REPAYMENTS"], lake=lake)
    done = compact(tbl, min_files=2, min_file_age=timedelta(0))  # maintain_lake's own compaction
    assert done.compacted_partitions >= 1 and tbl.refresh().current_snapshot().summary.operation.value == "overwrite"
    tbl.append(repayments(tbl, 90, 10))
    report = sync(fresh, ["REPAYMENTS"], lake=lake)
    assert [(r.mode, r.rows) for r in report.tables] == [("incremental", 10)]
    assert snowflake_rows(fresh, "REPAYMENTS") == lake_rows(tbl)


def test_any_other_overwrite_falls_back_to_a_full_merge_without_duplicates(fresh: Settings, tmp_path: Path) -> None:
    lake, tbl = new_lake(tmp_path)
    tbl.append(repayments(tbl, 0, 30))
    tbl.append(repayments(tbl, 30, 30))
    sync(fresh, ["REPAYMENTS"], lake=lake)
    rows = tbl.scan().to_arrow()
    tbl.overwrite(rows.slice(0, 50))  # a backfill or a fix rewriting rows: the loader cannot follow it
    tbl.append(repayments(tbl, 60, 10))
    report = sync(fresh, ["REPAYMENTS"], lake=lake)
    assert report.tables[0].mode == "full" and report.tables[0].reason.endswith(("delete", "overwrite"))
    assert snowflake_rows(fresh, "REPAYMENTS") == lake_rows(tbl)


def test_expired_loaded_snapshot_falls_back_to_a_full_merge(fresh: Settings, tmp_path: Path) -> None:
    lake, tbl = new_lake(tmp_path)
    tbl.append(repayments(tbl, 0, 20))
    sync(fresh, ["REPAYMENTS"], lake=lake)
    loaded = tbl.current_snapshot().snapshot_id
    tbl.append(repayments(tbl, 20, 20))
    middle = tbl.current_snapshot().snapshot_id
    tbl.append(repayments(tbl, 40, 20))
    tbl.maintenance.expire_snapshots().by_ids([loaded, middle]).commit()
    assert tbl.refresh().metadata.snapshot_by_id(loaded) is None
    report = sync(fresh, ["REPAYMENTS"], lake=lake)
    assert report.tables[0].mode == "full" and "no longer" in report.tables[0].reason
    assert snowflake_rows(fresh, "REPAYMENTS") == lake_rows(tbl)


def test_rows_deleted_in_the_lake_are_deleted_in_snowflake(fresh: Settings, tmp_path: Path) -> None:
    lake, tbl = new_lake(tmp_path)
    tbl.append(repayments(tbl, 0, 50))
    sync(fresh, ["REPAYMENTS"], lake=lake)
    tbl.delete("customer_id == 'c3'")
    report = sync(fresh, ["REPAYMENTS"], lake=lake)
    assert report.tables[0].mode == "full"
    got = snowflake_rows(fresh, "REPAYMENTS")
    assert got == lake_rows(tbl) and len(got) < 50 and all(r[4] != "c3" for r in got)


@pytest.mark.parametrize("fault", ["after_commit:2", "before_commit:2"],
                         ids=["killed_between_batches", "killed_between_merge_and_commit"])
def test_a_killed_loader_run_again_leaves_no_duplicates_and_no_gaps(fresh: Settings, tmp_path: Path,
                                                                   fault: str) -> None:
    lake, tbl = new_lake(tmp_path)
    tbl.append(repayments(tbl, 0, 60))
    sync(fresh, ["REPAYMENTS"], lake=lake)
    tbl.append(repayments(tbl, 60, 100))
    killed = run_loader(fresh, tmp_path / "lake", ["REPAYMENTS"], batch_rows=30, fault=fault)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    partial = snowflake_rows(fresh, "REPAYMENTS")
    assert 60 < len(partial) < 160 and len({r[0] for r in partial}) == len(partial)
    with connect(fresh) as conn:
        assert loaded_snapshot(conn.cursor(), table("REPAYMENTS")) != tbl.current_snapshot().snapshot_id
    again = sync(fresh, ["REPAYMENTS"], lake=lake, batch_rows=30)
    assert again.tables[0].mode == "incremental" and again.tables[0].rows == 100
    assert snowflake_rows(fresh, "REPAYMENTS") == lake_rows(tbl)
    with connect(fresh) as conn:
        assert loaded_snapshot(conn.cursor(), table("REPAYMENTS")) == tbl.current_snapshot().snapshot_id


def test_follow_picks_up_rows_appended_between_runs(fresh: Settings, tmp_path: Path) -> None:
    from warehouse.loader import follow
    lake, tbl = new_lake(tmp_path)
    tbl.append(repayments(tbl, 0, 10))
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if line.startswith("sync done") and len([x for x in lines if x.startswith("sync done")]) == 1:
            tbl.append(repayments(tbl, 10, 15))  # new lake rows while the loader waits for its next run

    assert follow(fresh, 0.1, ["REPAYMENTS"], progress, max_runs=2, lake=lake) == 2
    assert [x for x in lines if x.startswith("sync done")] == ["sync done: 10 rows", "sync done: 15 rows"]
    assert snowflake_rows(fresh, "REPAYMENTS") == lake_rows(tbl)
