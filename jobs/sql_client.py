"""`riskctl sql`: Flink's SQL client with an init file rendered from the same sql/ files the job runs."""

from __future__ import annotations

from pathlib import Path

from jobs.params import sql_params, udf_job_parameters
from jobs.sqlfiles import load
from loanrisk.files import write_private
from loanrisk.settings import REPO_ROOT, Settings
from udfs import WORKER_PACKAGES

INIT_FOLDERS = ("catalog", "risk")


def init_statements(settings: Settings) -> list[str]:
    """Every statement of the risk job except its INSERTs, plus what the client needs for the UDF."""
    params = sql_params(settings)
    job_parameters = udf_job_parameters(settings).replace("'", "''")
    python_files = ",".join(str(REPO_ROOT / name) for name in WORKER_PACKAGES)
    head = [f"SET 'python.files' = '{python_files}'",
            f"SET 'python.executable' = '{settings.flink_python}'",
            "SET 'sql-client.execution.result-mode' = 'tableau'",
            f"SET 'pipeline.global-job-parameters' = '{job_parameters}'"]
    body = [stmt.text for folder in INIT_FOLDERS for stmt in load(REPO_ROOT / "sql" / folder, params)
            if not stmt.is_insert]
    return head + body


def write_init_file(settings: Settings) -> Path:
    """Write the init file (mode 0600: it holds the catalog and S3 credentials)."""
    path = settings.state_dir / "run" / "sql-client-init.sql"
    return write_private(path, ";\n\n".join(init_statements(settings)) + ";\n")


def client_command(settings: Settings, script: Path | None = None) -> list[str]:
    """The sql-client.sh command line (embedded mode against the configured cluster)."""
    cmd = [str(settings.flink_home / "bin" / "sql-client.sh"), "embedded", "-i", str(write_init_file(settings))]
    if script is not None:
        cmd += ["-f", str(script)]
    return cmd
