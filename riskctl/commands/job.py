"""`riskctl job submit|resume|list|cancel|savepoint`: the risk job on the Flink cluster (flink run + REST API)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from loanrisk.settings import REPO_ROOT, Settings, get_settings

RISK_JOB_NAME = "loan-risk"
RISK_SQL = ("catalog", "risk")


def submit_risk_job(settings: Settings, name: str = RISK_JOB_NAME, savepoint: str | None = None,
                    only_into: tuple[str, ...] = ()) -> str:
    """Submit the risk job (sql/catalog + sql/risk as one statement set), from ``savepoint`` if given; returns the id.

    ``only_into``: table-name globs; only the INSERTs into those are submitted (the benchmark's floor).
    """
    from loanrisk.serving import ensure_serving_tables
    from stack.flink_client import flink_run, write_params
    from stack.recovery import Submission, record_submission
    ensure_serving_tables(settings)
    conf = job_flink_conf(settings, name)
    if savepoint:
        # The same SQL compiles to the same operator ids, so the state maps back (settings may differ).
        conf["execution.state-recovery.path"] = savepoint
    params = write_params(settings, name, flink_conf=conf, state_retention=state_retention(settings))
    args: list[str] = ["--plan-out", str(params.with_name(f"plan-{name}.json"))]
    for folder in RISK_SQL:
        args += ["--sql-dir", str(REPO_ROOT / "sql" / folder)]
    for glob in only_into:
        args += ["--only-into", glob]
    entry, args = REPO_ROOT / "jobs" / "run_sql.py", [*args, "--params", str(params), "--name", name]
    py_files = risk_job_python_files()
    job_id = flink_run(settings, entry, args, py_files=py_files)
    # What the supervisor resubmits, from its latest checkpoint, if the JobManager dies under it.
    record_submission(settings, Submission(name, job_id, str(entry), args, [str(p) for p in py_files], str(params)))
    return job_id


def risk_job_python_files() -> list[Path]:
    """The folders shipped with the risk job (-pyfs): jobs/ for the entry point, and what the UDFs import."""
    from udfs import WORKER_PACKAGES
    return [REPO_ROOT / "jobs", *(REPO_ROOT / name for name in WORKER_PACKAGES)]


def job_flink_conf(settings: Settings, name: str) -> dict[str, object]:
    """The risk job's Flink configuration from the settings (checkpointing, parallelism, Python bundles)."""
    from stack.flink_conf import checkpoint_dir, savepoint_dir
    f = settings.flink
    return {"pipeline.global-job-parameters": udf_job_parameters(settings),
            "execution.checkpointing.interval": f"{f.checkpoint_interval_ms} ms",
            # One folder per job name (Flink adds <job id>/chk-<n>): `riskctl job resume` and the supervisor
            # find every job id's checkpoints of this job there, and only this job's.
            "execution.checkpointing.dir": checkpoint_dir(settings, name),
            "execution.checkpointing.savepoint-dir": savepoint_dir(settings, name),
            "execution.checkpointing.mode": "EXACTLY_ONCE", "parallelism.default": f.parallelism,
            # Aligned on purpose. Unaligned barriers cut p99 latency at 2,000 ev/s from 11.5 s to 3.7 s here
            # (a barrier no longer waits behind the transaction backlog at the scorer's union), but Iceberg's
            # FlinkSink loses data files on recovery from an unaligned checkpoint (apache/iceberg#15846).
            "execution.checkpointing.unaligned.enabled": "false",
            "python.fn-execution.arrow.batch.size": f.python_batch_size,
            # A bundle waits at most this long for more rows (Flink's default, 1 s, is on the latency path).
            "python.fn-execution.bundle.time": f.python_bundle_time_ms, "pipeline.name": name}


def state_retention(settings: Settings) -> dict[str, int]:
    """Seconds of state per retention name of jobs/state_retention.py."""
    f = settings.flink
    return {"dedup": f.dedup_retention_s, "behaviour": f.behaviour_retention, "loan": f.loan_retention_s}


def udf_job_parameters(settings: Settings) -> str:
    """The scorer UDF's settings as a JSON map (Flink 2.1 accepts it; the k:v,k:v form breaks on URIs)."""
    s3 = settings.s3
    params = {"model.registry_uri": settings.model.registry(s3), "model.poll_interval_s": settings.model.poll_interval_s,
              "model.alert_threshold": settings.model.alert_threshold, "s3.endpoint": s3.url, "s3.region": s3.region,
              "s3.access_key_id": s3.access_key_id, "s3.secret_access_key": s3.secret()}
    return json.dumps({k: str(v) for k, v in params.items()})


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
    plan = settings.state_dir / "run" / f"plan-{RISK_JOB_NAME}.json"
    for row in retention_table(json.loads(plan.read_text())):
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


__all__ = ["job", "submit_risk_job", "Path"]
