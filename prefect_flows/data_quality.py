"""data_quality: checks on the raw, feature and score tables; a failed check fails the run, naming it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from loanrisk.errors import LoanRiskError
from prefect_flows.options import TASK_DEFAULTS, flow_options, with_policy
from prefect_flows.quality.checks import CheckResult, summary
from prefect_flows.quality.suite import (
    CLOSED_COLUMN, LANDED_COLUMN, TABLES, commit_history, content_checks, metadata_checks,
)


class DataQualityError(LoanRiskError):
    """One or more data-quality checks failed; the message names each."""


def table_snapshots(table: Any) -> list[tuple[int, str, int]]:
    """(timestamp_ms, operation, added-records) of every snapshot still in the table's metadata."""
    out = []
    for snap in table.snapshots():
        summary_ = snap.summary
        op = summary_.operation.value if summary_ is not None else "unknown"
        added = int((summary_.additional_properties if summary_ is not None else {}).get("added-records", 0))
        out.append((snap.timestamp_ms, op, added))
    return out


def recent_rows(table: str, recent_h: float | None, now: datetime, behaviour_window: timedelta = timedelta(0)) -> Any:
    """The scan filter of ``table``'s rows that landed in the last ``recent_h`` hours, or of its windows closed in
    them and ``behaviour_window`` before (every row: None). The lake's files are written in arrival order, so
    their column bounds let the scan skip the older ones."""
    from pyiceberg.expressions import AlwaysTrue, GreaterThanOrEqual
    column = LANDED_COLUMN.get(table) or CLOSED_COLUMN.get(table)
    if column is None or recent_h is None:
        return AlwaysTrue()
    span = timedelta(hours=recent_h) + (behaviour_window if table in CLOSED_COLUMN else timedelta(0))
    return GreaterThanOrEqual(column, (now - span).isoformat())


@task(name="check-table", task_run_name="check-{table}", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def check_table(table: str, namespace: str, max_staleness_h: float, min_volume_ratio: float,
                recent_h: float | None = None) -> list[CheckResult]:
    """Read one lake table (current snapshot; the rows of the last ``recent_h`` hours, by recent_rows) and run its
    content and metadata checks."""
    from loanrisk.lake import catalog
    from loanrisk.settings import get_settings

    log = get_run_logger()
    s = get_settings()
    tbl = catalog(s).load_table(f"{namespace}.{table}")
    now = datetime.now(timezone.utc)
    window = timedelta(days=s.flink.behaviour_window_days)
    frame = (tbl.scan(row_filter=recent_rows(table, recent_h, now, window)).to_pandas()
             if tbl.current_snapshot() is not None else None)
    if frame is None:
        import pandas as pd
        frame = pd.DataFrame(columns=[f.name for f in tbl.schema().fields])
    results = content_checks(table, frame)
    landed = frame[LANDED_COLUMN[table]] if LANDED_COLUMN.get(table) in frame.columns else None
    results += metadata_checks(table, commit_history(table_snapshots(tbl)), timedelta(hours=max_staleness_h),
                               min_volume_ratio, now, landed=landed,
                               behaviour_window=window)
    for r in results:
        (log.info if r.passed else log.error)(r.line())
    return results


@flow(**flow_options("data_quality", "Schema, null, range, uniqueness, freshness and volume checks on the lake."))
def data_quality(tables: list[str] | None = None, namespace: str | None = None, max_staleness_h: float = 24.0,
                 min_volume_ratio: float = 0.5, recent_h: float | None = 48.0) -> str:
    """Run every table's checks; raise DataQualityError naming each failed check.

    Each table is read for its rows that landed in the last ``recent_h`` hours (raw events by arrival, scores by
    their trigger's time), a window table for its windows closed in them and a window length before (None: all of
    it): volume compares the last day with the day before, and the hourly run checks the new rows rather than
    reading tables that grow by every event for as long as the lake keeps them. So a score's uniqueness per loan is
    checked among the scores of those hours.
    """
    from loanrisk.settings import get_settings

    ns = namespace or get_settings().catalog.namespace
    chosen = list(tables or TABLES)
    unknown = [t for t in chosen if t not in TABLES]
    if unknown:
        raise DataQualityError(f"no checks for {', '.join(unknown)}; known tables: {', '.join(TABLES)}")
    results = [r for t in chosen
               for r in with_policy(check_table)(t, ns, max_staleness_h, min_volume_ratio, recent_h)]
    text = summary(results)
    if any(not r.passed for r in results):
        raise DataQualityError(text)
    get_run_logger().info(text)
    return text
