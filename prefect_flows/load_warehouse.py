"""load_warehouse: the Snowflake loader (warehouse.loader.sync) as a retried task."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from prefect_flows.options import TASK_DEFAULTS, flow_options, with_policy


@task(name="sync-to-snowflake", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def sync_tables(tables: list[str] | None) -> str:
    """Run the exactly-once loader; returns its report as text."""
    from warehouse.loader import sync  # imported here: the loader lands separately

    from loanrisk.settings import get_settings

    log = get_run_logger()
    report: Any = sync(get_settings(), tables=tables, progress=log.info)
    text = report.summary() if hasattr(report, "summary") else str(report)
    log.info(text)
    return text


@flow(**flow_options("load_warehouse", "Load new lake rows into Snowflake (exactly once)."))
def load_warehouse(tables: list[str] | None = None) -> str:
    """Sync ``tables`` (default: every table the loader knows) from Iceberg to Snowflake."""
    return with_policy(sync_tables)(tables)
