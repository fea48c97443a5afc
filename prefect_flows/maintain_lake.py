"""maintain_lake: declared table properties, compaction of small files, snapshot expiry and orphan-file cleanup for
every lake table."""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from prefect_flows.lake_upkeep import UpkeepReport, compact, expire_snapshots, remove_orphans, s3_lister_deleter
from prefect_flows.options import TASK_DEFAULTS, flow_options, with_policy


@task(name="upkeep-table", task_run_name="upkeep-{table}", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def upkeep(table: str, namespace: str, min_files: int, do_compact: bool) -> str:
    """Bring a lake table's properties up to its declaration, then compact, expire and clean it (safety ages from
    settings.prefect)."""
    from contracts.table_sql import lake_table_properties
    from contracts.tables import LAKE_TABLES
    from loanrisk.lake import catalog, upgrade_table_properties
    from loanrisk.settings import get_settings

    s = get_settings()
    tbl = catalog(s).load_table(f"{namespace}.{table}")
    report = UpkeepReport(table)
    declared = next((t for t in LAKE_TABLES if t.name == table), None)
    if declared is not None:
        # Before compaction, so the files it writes already follow them (the job's writers: at its next submission).
        changed = upgrade_table_properties(tbl, lake_table_properties(declared))
        if changed:
            report.notes.append(f"properties set: {', '.join(sorted(changed))}")
    if do_compact:
        compact(tbl, min_files=min_files, report=report, group_bytes=s.prefect.compaction_file_mb * 2 ** 20)
    expire_snapshots(tbl.refresh(), timedelta(hours=s.prefect.snapshot_min_age_h), report=report)
    lister, deleter = s3_lister_deleter(s.s3)
    remove_orphans(tbl, lister, deleter, timedelta(hours=s.prefect.orphan_min_age_h), report=report)
    get_run_logger().info(report.line())
    return report.line()


@task(name="prune-restore-points", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def prune_restore_points() -> str:
    """Dispose of the risk job's checkpoints and savepoints past flink.restore_point_retention_days: their state
    holds customer ids, which an erasure must not outlive."""
    from jobs.params import RISK_JOB_NAME
    from loanrisk.settings import get_settings
    from stack.recovery import prune_restore_points as prune

    s = get_settings()
    logger = get_run_logger()
    gone = prune(s, RISK_JOB_NAME, say=logger.info)
    return f"{len(gone)} restore point(s) of {RISK_JOB_NAME} older than {s.flink.restore_point_retention_days:g} days"


@task(name="replay-erasures", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def replay_erasures() -> str:
    """Apply again the erasures a source could still undo (erasure/ledger.py): a job resumed from an earlier
    checkpoint, or a replay, may have brought a customer's rows back; forget the others."""
    from erasure.customer import replay_erasures as replay
    from loanrisk.settings import get_settings

    done = replay(get_settings())
    back = {r.customer_id: sum(r.removed.values()) for r in done.reports if sum(r.removed.values())}
    if back:
        get_run_logger().warning("rows of erased customers had come back and were removed again: %s", back)
    failed = [r.customer_id for r in done.reports if r.failed]
    if failed:
        raise RuntimeError(f"erasure replay incomplete for {', '.join(failed)}")
    return (f"{len(done.reports)} erasure(s) applied again, {sum(back.values())} row(s) had come back, "
            f"{done.forgotten} forgotten (no source can undo them)")


@flow(**flow_options("maintain_lake", "Iceberg upkeep: compact small files, expire old snapshots, delete orphans; "
                     "apply recent erasures again; dispose of checkpoints and savepoints past their retention."))
def maintain_lake(tables: list[str] | None = None, namespace: str | None = None, min_files: int = 8,
                  compact_files: bool = True) -> list[str]:
    """Upkeep of ``tables`` (default: every table in the namespace), one task each."""
    from loanrisk.lake import table_names
    from loanrisk.settings import get_settings

    s = get_settings()
    ns = namespace or s.catalog.namespace
    chosen = tables or table_names(s, ns)
    done = [with_policy(upkeep)(t, ns, min_files, compact_files) for t in chosen]
    return [*done, with_policy(replay_erasures)(), with_policy(prune_restore_points)()]
