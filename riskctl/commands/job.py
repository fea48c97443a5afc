"""`riskctl job submit|list|cancel|savepoint`: the risk job on the Flink cluster (flink run + REST API)."""

from __future__ import annotations

from pathlib import Path

import click

from loanrisk.settings import REPO_ROOT, Settings, get_settings

RISK_JOB_NAME = "loan-risk"
RISK_SQL = ("catalog", "risk")


def submit_risk_job(settings: Settings, name: str = RISK_JOB_NAME) -> str:
    """Submit the risk job (sql/catalog + sql/risk as one statement set); returns the job id."""
    from stack.flink_client import flink_run, write_params
    f = settings.flink
    conf = {"execution.checkpointing.interval": f"{f.checkpoint_interval_ms} ms",
            "execution.checkpointing.mode": "EXACTLY_ONCE", "parallelism.default": f.parallelism,
            "python.fn-execution.arrow.batch.size": f.python_batch_size, "pipeline.name": name}
    params = write_params(settings, name, flink_conf=conf)
    args: list[str] = []
    for folder in RISK_SQL:
        args += ["--sql-dir", str(REPO_ROOT / "sql" / folder)]
    return flink_run(settings, REPO_ROOT / "jobs" / "run_sql.py", [*args, "--params", str(params), "--name", name],
                     py_files=[REPO_ROOT / "jobs", REPO_ROOT / "udfs"] if (REPO_ROOT / "udfs").exists() else None)


@click.group()
def job() -> None:
    """Submit and manage the risk job on the Flink cluster."""


@job.command("submit")
def job_submit() -> None:
    """Submit the risk job with `flink run` (fails if one is already running)."""
    from stack.flink_client import list_jobs
    settings = get_settings()
    running = [j for j in list_jobs(settings) if j["name"] == RISK_JOB_NAME and j["state"] == "RUNNING"]
    if running:
        raise click.ClickException(f"{RISK_JOB_NAME} is already running as job {running[0]['jid']}")
    click.echo(f"submitted {RISK_JOB_NAME} as job {submit_risk_job(settings)}")


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
    cancel(get_settings(), job_id)
    click.echo(f"cancelled {job_id}")


@job.command("savepoint")
@click.argument("job_id")
@click.option("--stop", is_flag=True, help="Stop the job with the savepoint.")
def job_savepoint(job_id: str, stop: bool) -> None:
    """Take a savepoint of JOB_ID (and stop it with --stop)."""
    from stack.flink_client import savepoint, stop_with_savepoint
    path = (stop_with_savepoint if stop else savepoint)(get_settings(), job_id)
    click.echo(f"savepoint: {path}")


__all__ = ["job", "submit_risk_job", "Path"]
