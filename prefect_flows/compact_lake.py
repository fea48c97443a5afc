"""compact_lake: the lake's small files older than an hour rewritten into larger ones, every hour.

The job adds a data file per writer, table and day partition it touched at every checkpoint: on live traffic the
day's partition of a busy raw table gets 2 x 360 files an hour at the 10 s interval and parallelism 2, 17,280 by
midnight. maintain_lake's daily compaction reaches that partition the next night; until then every reader of the
live day (data_quality every hour, retraining, the SQL client) opens each of those files. Hourly, a reader of the
live day opens at most an hour of them and a file per compacted run (docs/PERFORMANCE.md, "The live day's small
files").
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from prefect_flows.lake_upkeep import compact
from prefect_flows.options import TASK_DEFAULTS, flow_options, with_policy


@task(name="compact-table", task_run_name="compact-{table}", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def compact_table(table: str, namespace: str, min_files: int, min_age_min: float) -> str:
    """Compact ``table``'s small files older than ``min_age_min`` minutes (prefect_flows/lake_upkeep.py: safe beside
    the job)."""
    from loanrisk.lake import catalog
    from loanrisk.settings import get_settings

    s = get_settings()
    tbl = catalog(s).load_table(f"{namespace}.{table}")
    report = compact(tbl, min_files=min_files, min_file_age=timedelta(minutes=min_age_min),
                     group_bytes=s.prefect.compaction_file_mb * 2 ** 20)
    get_run_logger().info(report.line())
    return report.line()


@flow(**flow_options("compact_lake", "Iceberg compaction of every lake table, hourly: the job adds a file per writer "
                     "and partition at every checkpoint."))
def compact_lake(tables: list[str] | None = None, namespace: str | None = None, min_files: int = 8,
                 min_age_min: float = 60.0) -> list[str]:
    """Compaction of ``tables`` (default: every table in the namespace), one task each, of files older than
    ``min_age_min`` minutes (maintain_lake's age too)."""
    from loanrisk.errors import ConfigError
    from loanrisk.lake import table_names
    from loanrisk.settings import get_settings

    if min_files < 2:
        raise ConfigError(f"compact_lake: min_files must be 2 or more, not {min_files}")
    if min_age_min < 0:
        raise ConfigError(f"compact_lake: min_age_min must be 0 or more, not {min_age_min}")
    s = get_settings()
    ns = namespace or s.catalog.namespace
    chosen = tables or table_names(s, ns)
    return [with_policy(compact_table)(t, ns, min_files, min_age_min) for t in chosen]
