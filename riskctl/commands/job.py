"""`riskctl job submit|resume|list|cancel|savepoint`: the risk job on the Flink cluster (flink run + REST API)."""

from __future__ import annotations

import json

import click

from jobs.params import RISK_JOB_NAME
from jobs.submit import plan_path, submit_risk_job
from loanrisk.settings import Settings, get_settings


@click.group()
def job() -> None:
    """Submit and manage the risk job on the Flink cluster."""


@job.command("submit")
@click.option("--from-savepoint", "savepoint", default=None, help="Resume from this savepoint (riskctl job savepoint).")
def job_submit(savepoint: str | None) -> None:
    """Submit the risk job with `flink run` (fails if one is already running)."""
    from stack.flink_client import list_jobs
    settings = get_settings()
    running = [j for j in list_jobs(settings) if j["name"] == RISK_JOB_NAME and j["state"] == "RUNNING"]
    if running:
        raise click.ClickException(f"{RISK_JOB_NAME} is already running as job {running[0]['jid']}")
    click.echo(f"submitted {RISK_JOB_NAME} as job {submit_risk_job(settings, savepoint=savepoint)}")
    _echo_retention(settings)


def _echo_retention(settings: Settings) -> None:
    """The state retention of every stateful operator of the plan just submitted."""
    from jobs.state_retention import retention_table
    for row in retention_table(json.loads(plan_path(settings).read_text())):
        click.echo(f"  state kept {_duration(row['ttl']):>7}  {row['holds']} (node {row['node']})")


def _duration(ttl: str) -> str:
    """``129600000 ms`` -> ``36 h``: a plan's TTL as a person reads it."""
    seconds = int(ttl.split()[0]) // 1000 if ttl.endswith(" ms") else None
    if seconds is None:
        return ttl
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


@job.command("resume")
@click.option("--from", "from_path", default=None, metavar="PATH",
              help="A checkpoint (chk-N folder) or savepoint folder to resume from instead of the latest.")
def job_resume(from_path: str | None) -> None:
    """Submit the risk job from its latest completed checkpoint, or a newer savepoint (fails if it is running)."""
    from stack.flink_client import list_jobs
    from stack.flink_conf import checkpoint_dir, savepoint_dir
    from stack.recovery import ALIVE, latest_restore_point, restore_point_at
    settings = get_settings()
    live = [j for j in list_jobs(settings) if j["name"] == RISK_JOB_NAME and j["state"] in ALIVE]
    if live:
        raise click.ClickException(f"{RISK_JOB_NAME} is already running as job {live[0]['jid']} "
                                   f"({live[0]['state']}); cancel it first to resume from an earlier state")
    if from_path:
        point = restore_point_at(settings, from_path)
        if point is None:
            raise click.ClickException(f"nothing to resume from at {from_path}: no _metadata file there (a completed "
                                       "checkpoint's chk-N folder or a savepoint folder has one)")
    else:
        point = latest_restore_point(settings, RISK_JOB_NAME)
        if point is None:
            raise click.ClickException(
                f"nothing to resume {RISK_JOB_NAME} from: no completed checkpoint under "
                f"{checkpoint_dir(settings, RISK_JOB_NAME)} and no savepoint under "
                f"{savepoint_dir(settings, RISK_JOB_NAME)}; `riskctl job submit` starts it without state")
    job_id = submit_risk_job(settings, savepoint=point.uri)
    click.echo(f"resumed {RISK_JOB_NAME} as job {job_id} from {point.describe()}")


@job.command("list")
def job_list() -> None:
    """List the cluster's jobs."""
    from stack.flink_client import list_jobs
    for j in list_jobs(get_settings()):
        click.echo(f"{j['jid']}  {j['state']:<10} {j['name']}")


@job.command("cancel")
@click.argument("job_id")
def job_cancel(job_id: str) -> None:
    """Cancel JOB_ID."""
    from stack.flink_client import cancel
    from stack.recovery import mark_stopped
    settings = get_settings()
    cancel(settings, job_id)
    mark_stopped(settings, job_id)
    click.echo(f"cancelled {job_id}")


@job.command("savepoint")
@click.argument("job_id")
@click.option("--stop", is_flag=True, help="Stop the job with the savepoint.")
def job_savepoint(job_id: str, stop: bool) -> None:
    """Take a savepoint of JOB_ID (and stop it with --stop)."""
    from stack.flink_client import savepoint, stop_with_savepoint
    from stack.recovery import mark_stopped
    settings = get_settings()
    path = (stop_with_savepoint if stop else savepoint)(settings, job_id)
    if stop:
        mark_stopped(settings, job_id)
    click.echo(f"savepoint: {path}")


@job.command("prune")
@click.option("--dry-run", is_flag=True, help="List what would be disposed of, dispose of nothing.")
def job_prune(dry_run: bool) -> None:
    """Dispose of the risk job's checkpoints and savepoints older than flink.restore_point_retention_days (never the
    latest one, nor a running job's checkpoints)."""
    from stack.recovery import prune_restore_points
    settings = get_settings()
    gone = prune_restore_points(settings, RISK_JOB_NAME, dry_run=dry_run, say=click.echo)
    days = settings.flink.restore_point_retention_days
    click.echo(f"{len(gone)} restore point(s) of {RISK_JOB_NAME} older than {days:g} days "
               f"{'would be disposed of' if dry_run else 'disposed of'}")
