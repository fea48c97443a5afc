"""bench/live_day_files.py's pieces on a local table: a checkpoint file's rows, the measured compaction, the read."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from bench.live_day_files import commit, compact_measured, file_rows, read_day


def test_a_checkpoint_files_rows_are_of_the_day_and_in_arrival_order_within_its_ten_seconds() -> None:
    from warehouse.ddl import iceberg_schema
    rows = file_rows(iceberg_schema("raw_transactions"), date(2026, 1, 2), 3, 7, 50)
    assert rows.num_rows == 50 and set(rows["event_date"].to_pylist()) == {date(2026, 1, 2)}
    stamps = rows["ingested_at"].to_pylist()
    start = datetime(2026, 1, 2, 3, tzinfo=timezone.utc) + timedelta(seconds=30)  # file 7: writer 2 of checkpoint 3
    assert stamps == sorted(stamps) and start <= stamps[0] and stamps[-1] < start + timedelta(seconds=10)
    assert rows["event_id"].null_count == 0 and rows["amount_minor"].null_count == 0


def test_the_measured_compaction_merges_the_days_files_and_the_read_finds_every_row(tmp_path: Path) -> None:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    from warehouse.ddl import iceberg_partition_spec, iceberg_schema
    cat = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=f"file://{tmp_path}/wh")
    cat.create_namespace("bench")
    schema = iceberg_schema("raw_transactions")
    table = cat.create_table("bench.t", schema=schema,
                             partition_spec=iceberg_partition_spec("raw_transactions", schema))
    day = date(2026, 1, 2)
    files = [f for i in range(12)
             for f in _dataframe_to_data_files(table.metadata, file_rows(table.schema(), day, 0, i, 20), table.io)]
    commit(table, files)
    assert read_day(table, day, 1)[:2] == (12, 240)
    report, wall, peak = compact_measured(table, 2 ** 20)
    assert (report.files_before, report.files_after) == (12, 1) and wall > 0 and peak > 0
    assert read_day(table, day, 1)[:2] == (1, 240)
