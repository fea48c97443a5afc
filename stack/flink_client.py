"""Submits PyFlink jobs with `flink run` and talks to Flink's REST API (list, cancel, savepoint, wait)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from loanrisk.errors import StackError
from loanrisk.settings import REPO_ROOT, KafkaSettings, Settings
from contracts.flink_sql import scoring_fragments, sql_fragments
from stack.flink_conf import flink_env, savepoint_dir


def interval(seconds: int) -> str:
    """A Flink SQL day-to-second interval literal (no precision limits to trip over)."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{secs:02d}' DAY TO SECOND"


def kafka_security_options(kafka: KafkaSettings) -> str:
    """Kafka table options (``'properties.security.protocol' = 'SSL', ...``, each followed by a comma) or ''."""
    return "".join(f"'properties.{key}' = '{value.replace(chr(39), chr(39) * 2)}', "
                   for key, value in kafka.java_properties().items())


def sql_params(settings: Settings) -> dict[str, object]:
    """The ``${name}`` values every sql/ file may use, derived from the settings."""
    pg, s3, k, f = settings.postgres, settings.s3, settings.kafka, settings.flink
    return {
        "catalog_name": settings.catalog.name,
        "namespace": settings.catalog.namespace,
        "catalog_jdbc_url": pg.jdbc_url(pg.catalog_db),
        "catalog_jdbc_user": pg.user,
        "catalog_jdbc_password": pg.secret(),
        "serving_jdbc_url": pg.jdbc_url(pg.serving_db),
        "serving_jdbc_user": pg.user,
        "serving_jdbc_password": pg.secret(),
        "warehouse": settings.catalog.warehouse(s3),
        "s3_endpoint": s3.url,
        "s3_access_key_id": s3.access_key_id,
        "s3_secret_access_key": s3.secret(),
        "s3_region": s3.region,
        "kafka_bootstrap": k.bootstrap,
        "kafka_security": kafka_security_options(k),
        "consumer_group": f.consumer_group,
        "topic_applications": k.topics.applications,
        "topic_transactions": k.topics.transactions,
        "topic_repayments": k.topics.repayments,
        "topic_dead_letters": k.topics.dead_letters,
        "topic_alerts": k.topics.alerts,
        "kafka_max_message_bytes": k.max_message_bytes,
        "window_minutes": f.window_minutes,
        "alert_threshold": settings.model.alert_threshold,
        "lgd": settings.model.lgd,
        "pii_hash_key": settings.privacy.key(),
        "behaviour_window_days": f.behaviour_window_days,
        "behaviour_window_min": f.behaviour_window_days * 1440,
        "watermark_delay_s": f.watermark_delay_s,
        "watermark_delay": interval(f.watermark_delay_s),
        "risk_window": interval(f.window_minutes * 60),
        "behaviour_window": interval(f.behaviour_window_days * 86400),
        "behaviour_range": interval(2 * f.behaviour_window_days * 86400),
        "behaviour_range_days": 2 * f.behaviour_window_days,
        **sql_fragments(settings.privacy.key(), f.future_tolerance),
        **scoring_fragments(f.scorer),
    }


def write_params(settings: Settings, name: str, extra_sql: dict[str, object] | None = None,
                 flink_conf: dict[str, object] | None = None, state_retention: dict[str, int] | None = None) -> Path:
    """Write the job's parameter file (mode 0600: it holds credentials) and return its path."""
    path = settings.state_dir / "run" / f"params-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, object] = {"sql": {**sql_params(settings), **(extra_sql or {})}, "flink_conf": flink_conf or {}}
    if state_retention is not None:
        data["state_retention"] = state_retention
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return path


def flink_run(settings: Settings, job: Path, job_args: list[str], py_files: list[Path] | None = None) -> str:
    """`flink run -d -py job` against the cluster; returns the job id."""
    flink = settings.flink_home / "bin" / "flink"
    rest = settings.flink.rest_url.removeprefix("http://")
    files = ",".join(str(p) for p in (py_files or [REPO_ROOT / "jobs"]))
    cmd = [str(flink), "run", "-d", "-m", rest, "-py", str(job), "-pyfs", files, "-pyexec",
           str(settings.flink_python), *job_args]
    log = settings.state_dir / "logs" / "flink-submit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **flink_env(settings)},
                          cwd=REPO_ROOT)
    with log.open("a") as fh:
        fh.write(f"$ flink run ... {job.name} {' '.join(a for a in job_args if 'params' not in a)}\n")
        fh.write(proc.stdout[-20000:] + proc.stderr[-20000:])
    found = re.search(r"(?:JobID|job) ([0-9a-f]{32})", proc.stdout + proc.stderr)
    if proc.returncode != 0 or not found:
        raise StackError(f"flink run failed: {_root_cause(proc.stdout + proc.stderr)} (see {log})")
    return found.group(1)


_NOISE = ("InaccessibleObject", "process function transformation translator", "ExceptionInInitializerError",
          "Python process exits", "ProgramAbortException", "Py4JJavaError", "raise ")


def _root_cause(output: str) -> str:
    """The most telling error line of a failed `flink run` (the SQL/planner error, not the wrapper's)."""
    lines = [ln.strip() for ln in output.splitlines()
             if ("Exception" in ln or "Error" in ln) and not ln.lstrip().startswith("at ")
             and not any(n in ln for n in _NOISE)]
    for marker in ("ValidationException", "SqlValidatorException", "SqlParseException", "TableException",
                   "CalciteContextException", "Exception:"):
        for ln in lines:
            if marker in ln:
                return ln[:400]
    return lines[-1][:400] if lines else "no job id in the client output"


def rest(settings: Settings, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    """Call Flink's REST API and decode the JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{settings.flink.rest_url}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raise StackError(f"Flink REST {method} {path}: HTTP {exc.code} {exc.read()[:200]!r}") from None
    except OSError as exc:
        raise StackError(f"Flink REST API at {settings.flink.rest_url} is unreachable ({exc}); "
                         "is the stack up? (riskctl stack status)") from None
    return json.loads(raw) if raw else {}


def list_jobs(settings: Settings) -> list[dict[str, Any]]:
    """Every job the cluster knows, newest first (id, name, state, start-time)."""
    jobs = rest(settings, "/jobs/overview").get("jobs", [])
    return sorted(jobs, key=lambda j: j.get("start-time", 0), reverse=True)


def job_state(settings: Settings, job_id: str) -> str:
    """The job's state (RUNNING, FINISHED, FAILED, ...)."""
    return str(rest(settings, f"/jobs/{job_id}").get("state"))


def wait_for_state(settings: Settings, job_id: str, states: set[str], timeout_s: float) -> str:
    """Poll until the job reaches one of ``states`` (or a terminal one); returns the state."""
    deadline = time.monotonic() + timeout_s
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        state = job_state(settings, job_id)
        if state in states or state in {"FAILED", "CANCELED", "FINISHED"}:
            return state
        time.sleep(1)
    return state


def job_exceptions(settings: Settings, job_id: str) -> str:
    """The root exception of a job, if any (first line)."""
    info = rest(settings, f"/jobs/{job_id}/exceptions")
    root = (info.get("root-exception") or "") or ""
    hist = info.get("exceptionHistory", {}).get("entries", [])
    if not root and hist:
        root = hist[0].get("stacktrace", "")
    return root.strip().splitlines()[0] if root else ""


def cancel(settings: Settings, job_id: str) -> None:
    """Cancel a job."""
    rest(settings, f"/jobs/{job_id}?mode=cancel", method="PATCH")


def stop_with_savepoint(settings: Settings, job_id: str, timeout_s: float = 120) -> str:
    """Stop the job with a savepoint; returns the savepoint path."""
    target = _savepoint_target(settings, job_id)
    trigger = rest(settings, f"/jobs/{job_id}/stop", method="POST", body={"targetDirectory": target,
                                                                          "drain": False})
    return _await_savepoint(settings, job_id, trigger["request-id"], timeout_s)


def savepoint(settings: Settings, job_id: str, timeout_s: float = 120) -> str:
    """Trigger a savepoint and keep the job running; returns the savepoint path."""
    target = _savepoint_target(settings, job_id)
    trigger = rest(settings, f"/jobs/{job_id}/savepoints", method="POST",
                   body={"target-directory": target, "cancel-job": False})
    return _await_savepoint(settings, job_id, trigger["request-id"], timeout_s)


def _savepoint_target(settings: Settings, job_id: str) -> str:
    """The savepoint folder of the job's name, where `riskctl job resume` looks for it."""
    return savepoint_dir(settings, str(rest(settings, f"/jobs/{job_id}").get("name") or "unnamed"))


def _await_savepoint(settings: Settings, job_id: str, request_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = rest(settings, f"/jobs/{job_id}/savepoints/{request_id}")
        if info.get("status", {}).get("id") == "COMPLETED":
            op = info.get("operation", {})
            if "location" in op:
                return str(op["location"])
            raise StackError(f"savepoint failed: {str(op.get('failure-cause', {}).get('stack-trace', ''))[:300]}")
        time.sleep(1)
    raise StackError(f"savepoint of job {job_id} did not complete in {timeout_s:.0f}s")
