"""Benchmark: the live day's small files, what they cost a reader, and what the hourly ``compact_lake`` leaves.

The job adds a data file per writer to the live day's partition of each busy raw table at every checkpoint: 720 an
hour at the 10 s interval and parallelism 2. This writes ``--hours`` of them for ``raw_transactions`` (``--rate``
of its events per second, in rows of its columns, ``ingested_at`` in arrival order) into Iceberg tables on the
stack's object store (s3proxy, started alone on free ports and stopped by its PID; a SQLite catalog), then reads
the partition as ``data_quality`` does (rows by ``ingested_at`` since the day began):

- baseline: the partition as the job leaves it until ``maintain_lake``'s nightly compaction, every file small;
- hourly: the same files with ``compact_lake``'s compaction after each hour but the last two. That is its worst
  moment: just before a run at minute 15, the files of the two hours since the previous run's cut-off (an hour
  before it) are still small.

It prints, per arm, the partition's data files and the reader's wall seconds (median of ``--reads``), and per
hourly run the compaction's wall seconds and its peak Arrow memory.

Run: ``.venv/bin/python bench/live_day_files.py [--hours 6] [--rate 200] [--reads 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.job_throughput import log, own_stack_state

TABLE = "raw_transactions"
FILES_PER_HOUR = 2 * 360  # parallelism 2, a checkpoint every 10 s
COMMIT_EVERY = 120  # files per catalog commit while writing (the job commits every checkpoint; the reader's cost
#                     is in the data files it opens, so fewer commits only make the writing faster)


def file_rows(schema: Any, day: date, hour: int, index: int, rows: int) -> Any:
    """One checkpoint file's rows: every column filled by its type, ``ingested_at`` within that checkpoint."""
    import numpy as np
    import pyarrow as pa

    from pyiceberg.io.pyarrow import schema_to_pyarrow
    arrow = schema_to_pyarrow(schema, include_field_ids=False)
    rng = np.random.default_rng(hour * 100_000 + index)
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(hours=hour,
                                                                                   seconds=10 * (index // 2))
    stamps = pa.array([start + timedelta(milliseconds=int(ms)) for ms in np.sort(rng.integers(0, 10_000, rows))],
                      pa.timestamp("us", tz="UTC"))
    columns = {}
    for field in arrow:
        name, kind = field.name, field.type
        if name == "event_date":
            columns[name] = pa.array([day] * rows, kind)
        elif pa.types.is_timestamp(kind):
            columns[name] = stamps
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            columns[name] = pa.array([f"{name[:3]}-{v:09d}" for v in rng.integers(0, 10 ** 6, rows)], kind)
        elif pa.types.is_integer(kind):
            columns[name] = pa.array(rng.integers(0, 10 ** 6, rows), kind)
        elif pa.types.is_floating(kind):
            columns[name] = pa.array(rng.random(rows), kind)
        elif pa.types.is_boolean(kind):
            columns[name] = pa.array(rng.random(rows) < 0.5, kind)
        else:
            columns[name] = pa.array([day] * rows, kind)
    return pa.table(columns, schema=arrow)


def write_hour(table: Any, day: date, hour: int, rows: int, pool: ThreadPoolExecutor) -> list[Any]:
    """The data files of one hour of checkpoints, written to ``table``'s location (not committed)."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    def one(index: int) -> list[Any]:
        return list(_dataframe_to_data_files(table.metadata, file_rows(table.schema(), day, hour, index, rows),
                                             table.io))
    return [f for files in pool.map(one, range(FILES_PER_HOUR)) for f in files]


def commit(table: Any, files: list[Any]) -> None:
    """Append ``files`` in commits of COMMIT_EVERY."""
    for start in range(0, len(files), COMMIT_EVERY):
        with table.transaction() as tx:
            with tx.update_snapshot().fast_append() as append:
                for f in files[start:start + COMMIT_EVERY]:
                    append.append_data_file(f)


def read_day(table: Any, day: date, reads: int) -> tuple[int, int, float]:
    """Data files in the day's partition, rows read and the median wall seconds of reading them by ingested_at."""
    from pyiceberg.expressions import GreaterThanOrEqual
    since = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).isoformat()
    walls, rows = [], 0
    for _ in range(reads):
        t0 = time.perf_counter()
        rows = table.refresh().scan(row_filter=GreaterThanOrEqual("ingested_at", since)).to_arrow().num_rows
        walls.append(time.perf_counter() - t0)
    files = len(list(table.scan().plan_files()))
    return files, rows, statistics.median(walls)


def compact_measured(table: Any, group_bytes: int) -> tuple[Any, float, int]:
    """compact_lake's compaction of every file written so far: its report, wall seconds and peak Arrow bytes."""
    import pyarrow as pa

    from prefect_flows.lake_upkeep import compact
    peak, done = [pa.total_allocated_bytes()], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], pa.total_allocated_bytes())
    base = pa.total_allocated_bytes()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    report = compact(table.refresh(), min_files=8, min_file_age=timedelta(0), group_bytes=group_bytes)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    return report, wall, peak[0] - base


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the object store, write and read both arms, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=int, default=6, help="hours of the live day written (at least 3)")
    ap.add_argument("--rate", type=int, default=200, help=f"{TABLE} events per second")
    ap.add_argument("--reads", type=int, default=3, help="reads of the day per arm (the median is printed)")
    args = ap.parse_args(argv)
    if args.hours < 3 or args.rate < 1 or args.reads < 1:
        raise SystemExit("--hours must be 3 or more, --rate and --reads 1 or more")
    rows = args.rate * 10 // 2  # a checkpoint's rows per writer

    import shutil

    from loanrisk.lake import catalog
    from loanrisk.settings import Settings
    from stack.services.s3 import S3Endpoint
    from warehouse.ddl import iceberg_partition_spec, iceberg_schema
    state = own_stack_state("live-day-files")
    settings = Settings()
    store = S3Endpoint(settings)
    try:
        log(f"starting the object store (s3proxy) on 127.0.0.1:{settings.s3.port}")
        store.start(timeout_s=120)
        cat = catalog(settings, uri=f"sqlite:///{state}/catalog.db")  # the lake's catalog needs PostgreSQL
        cat.create_namespace("bench")
        schema = iceberg_schema(TABLE)
        spec = iceberg_partition_spec(TABLE, schema)
        baseline = cat.create_table("bench.nightly", schema=schema, partition_spec=spec)
        hourly = cat.create_table("bench.hourly", schema=schema, partition_spec=spec)
        day = datetime.now(timezone.utc).date()
        group_bytes = settings.prefect.compaction_file_mb * 2 ** 20
        runs = []
        with ThreadPoolExecutor(4) as pool:
            for hour in range(args.hours):
                t0 = time.perf_counter()
                files = write_hour(baseline, day, hour, rows, pool)
                commit(baseline, files)
                commit(hourly, files)  # the same files in the hourly arm's table
                log(f"hour {hour + 1}/{args.hours}: {len(files)} files of {rows:,} rows written in "
                    f"{time.perf_counter() - t0:.0f} s")
                if hour < args.hours - 2:
                    report, wall, peak = compact_measured(hourly, group_bytes)
                    runs.append((report, wall, peak))
                    log(f"  compact_lake after hour {hour + 1}: {report.files_before} -> {report.files_after} "
                        f"files in {wall:.1f} s, peak Arrow {peak / 2 ** 20:.0f} MB")
        log("reading the day's partition in each arm")
        read = {name: read_day(tbl, day, args.reads) for name, tbl in (("nightly", baseline), ("hourly", hourly))}
    finally:
        store.stop()
        shutil.rmtree(state, ignore_errors=True)

    print(f"\nThe live day's partition of {TABLE} after {args.hours} h at {args.rate:,} events/s "
          f"({FILES_PER_HOUR} files an hour of {rows:,} rows; s3proxy on this machine, reads by ingested_at, "
          f"median of {args.reads})")
    print(f"{'arm':<52} {'files':>7} {'rows':>11} {'read s':>8} {'ms per file':>12}")
    for name, label in (("nightly", "maintain_lake nightly only (baseline)"),
                        ("hourly", "compact_lake hourly, just before its next run")):
        files, n, wall = read[name]
        print(f"{label:<52} {files:>7,} {n:>11,} {wall:>8.2f} {1000 * wall / files:>12.2f}")
    base, now = read["nightly"][2], read["hourly"][2]
    print(f"hourly / baseline read time: {now / base:.2f} x ({read['hourly'][0]:,} files against "
          f"{read['nightly'][0]:,})")
    if runs:
        walls = [w for _, w, _ in runs]
        print(f"compact_lake runs: {len(runs)}, {statistics.median(walls):.1f} s median wall "
              f"(max {max(walls):.1f} s), peak Arrow memory {max(p for _, _, p in runs) / 2 ** 20:.0f} MB, "
              f"{sum(r.files_before for r, _, _ in runs):,} files replaced by {sum(r.files_after for r, _, _ in runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
