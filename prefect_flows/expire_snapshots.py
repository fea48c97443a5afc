"""expire_snapshots: Iceberg snapshot expiry for every lake table, every hour, between maintain_lake's daily runs.

The job commits every lake table at every checkpoint (360 snapshots an hour at the 10 s interval), and each commit
rewrites the table's metadata file, which lists every snapshot kept. Expired once a day, a table would carry up to a
day and the safety age of snapshots into every commit; expired hourly, the safety age and an hour
(docs/PERFORMANCE.md, "Snapshots kept and the cost of a commit").
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from prefect_flows.lake_upkeep import expire_snapshots as expire
from prefect_flows.options import TASK_DEFAULTS, flow_options, with_policy


@task(name="expire-table", task_run_name="expire-{table}", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def expire_table(table: str, namespace: str, min_age_h: float) -> str:
    """Expire ``table``'s snapshots older than ``min_age_h`` hours (branch and tag heads and the job's commit chain
    stay: prefect_flows/lake_upkeep.py)."""
    from loanrisk.lake import catalog
    from loanrisk.settings import get_settings

    tbl = catalog(get_settings()).load_table(f"{namespace}.{table}")
    report = expire(tbl, timedelta(hours=min_age_h))
    # The expiry's commit updated tbl in place: its snapshots are those kept.
    line = f"{table}: expired {report.expired_snapshots} snapshots, {len(tbl.snapshots())} kept"
    get_run_logger().info(line)
    return line


@flow(**flow_options("expire_snapshots", "Iceberg snapshot expiry for every lake table, hourly: each checkpoint's "
                     "commit rewrites the metadata that lists every snapshot kept."))
def expire_snapshots(tables: list[str] | None = None, namespace: str | None = None,
                     min_age_h: float | None = None) -> list[str]:
    """Expiry of ``tables`` (default: every table in the namespace), one task each; ``min_age_h`` defaults to
    prefect.snapshot_min_age_h."""
    from loanrisk.errors import ConfigError
    from loanrisk.lake import table_names
    from loanrisk.settings import get_settings

    s = get_settings()
    age = s.prefect.snapshot_min_age_h if min_age_h is None else min_age_h
    if age < 0:
        raise ConfigError(f"expire_snapshots: min_age_h must be 0 or more, not {age}")
    ns = namespace or s.catalog.namespace
    chosen = tables or table_names(s, ns)
    return [with_policy(expire_table)(t, ns, age) for t in chosen]
