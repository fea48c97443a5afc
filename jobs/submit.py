"""Submits the risk job (sql/catalog + sql/risk as one statement set) with `flink run` and records how,
so the supervisor can submit it again from its latest checkpoint."""

from __future__ import annotations

from pathlib import Path

from loanrisk.settings import REPO_ROOT, Settings
from jobs.params import RISK_JOB_NAME, params_path, risk_job_params

RISK_SQL = ("catalog", "risk")
ENTRY = REPO_ROOT / "jobs" / "run_sql.py"


def submit_risk_job(settings: Settings, name: str = RISK_JOB_NAME, savepoint: str | None = None,
                    only_into: tuple[str, ...] = (), extra_sql: tuple[str, ...] = (), root: Path = REPO_ROOT) -> str:
    """Submit the risk job, from ``savepoint`` if given; returns the job id.

    ``only_into``: table-name globs; only the INSERTs into those are submitted (the benchmarks' partial jobs).
    ``extra_sql``: more sql/ folders loaded after the job's own (the cost ladder's stage sinks).
    ``root``: the tree whose jobs/, sql/ and UDFs run (the cost ladder's baseline: an earlier commit's, unpacked).
    """
    from loanrisk.lake import add_missing_columns, upgrade_lake_tables
    from loanrisk.serving import ensure_serving_tables
    from stack import flink_client
    from stack.recovery import Submission, record_submission
    ensure_serving_tables(settings)
    upgrade_lake_tables(settings)  # the job's writers take the table properties as they are now
    add_missing_columns(settings)  # lake tables created before a column was declared take it in place
    if settings.flink.ships:
        from jobs.shipping import ensure_python_archive
        ensure_python_archive(settings)
    params = risk_job_params(settings, name, savepoint).write(params_path(settings, name))
    args: list[str] = ["--plan-out", str(plan_path(settings, name))]
    for folder in (*RISK_SQL, *extra_sql):
        args += ["--sql-dir", str(root / "sql" / folder)]
    for glob in only_into:
        args += ["--only-into", glob]
    args += ["--params", str(params), "--name", name]
    entry = root / ENTRY.relative_to(REPO_ROOT)
    py_files = risk_job_python_files(root)
    job_id = flink_client.flink_run(settings, entry, args, py_files=py_files)
    # What the supervisor resubmits, from its latest checkpoint, if the JobManager dies under it.
    record_submission(settings, Submission(name, job_id, str(entry), args, [str(p) for p in py_files], str(params)))
    return job_id


def plan_path(settings: Settings, name: str = RISK_JOB_NAME) -> Path:
    """The compiled plan jobs/run_sql.py writes for the job named ``name`` (read for its state retention)."""
    return settings.state_dir / "run" / f"plan-{name}.json"


def risk_job_python_files(root: Path = REPO_ROOT) -> list[Path]:
    """The folders shipped with the risk job (-pyfs): jobs/ for the entry point, and what the UDFs import."""
    from udfs import WORKER_PACKAGES
    return [root / "jobs", *(root / name for name in WORKER_PACKAGES)]
