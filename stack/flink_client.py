"""Submits PyFlink jobs with `flink run` and talks to Flink's REST API (list, cancel, savepoint, wait, and the
task, metric and checkpoint readings the tests and benchmarks take)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from loanrisk.errors import StackError
from loanrisk.settings import REPO_ROOT, Settings
from stack.flink_conf import flink_env, savepoint_dir


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
    # Never drained: a drain ends the Iceberg writers' input, where the sink can lose files (docs/RELIABILITY.md).
    trigger = rest(settings, f"/jobs/{job_id}/stop", method="POST", body={"targetDirectory": target,
                                                                          "drain": False})
    return _await_savepoint(settings, job_id, trigger["request-id"], timeout_s)


def savepoint(settings: Settings, job_id: str, timeout_s: float = 120) -> str:
    """Trigger a savepoint and keep the job running; returns the savepoint path."""
    target = _savepoint_target(settings, job_id)
    trigger = rest(settings, f"/jobs/{job_id}/savepoints", method="POST",
                   body={"target-directory": target, "cancel-job": False})
    return _await_savepoint(settings, job_id, trigger["request-id"], timeout_s)


def dispose_savepoint(settings: Settings, path: str, timeout_s: float = 120) -> None:
    """Have the JobManager dispose of the checkpoint or savepoint at ``path`` (its state files and metadata): Flink's
    own disposal, as `flink savepoint --dispose` does."""
    trigger = rest(settings, "/savepoint-disposal", method="POST", body={"savepoint-path": path})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = rest(settings, f"/savepoint-disposal/{trigger['request-id']}")
        if info.get("status", {}).get("id") == "COMPLETED":
            cause = (info.get("operation") or {}).get("failure-cause")
            if cause:
                raise StackError(f"disposing of {path} failed: {str(cause.get('stack-trace', ''))[:300]}")
            return
        time.sleep(0.5)
    raise StackError(f"disposing of {path} did not complete in {timeout_s:.0f}s")


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


def all_tasks_running(settings: Settings, job_id: str) -> bool:
    """The job is RUNNING and so is every one of its vertices."""
    info = rest(settings, f"/jobs/{job_id}")
    vertices = info.get("vertices", [])
    return info.get("state") == "RUNNING" and bool(vertices) and all(v.get("status") == "RUNNING" for v in vertices)


def last_checkpoint_ms(settings: Settings, job_id: str) -> int:
    """Acknowledgement time (epoch ms) of the latest completed checkpoint, 0 when none."""
    latest = (rest(settings, f"/jobs/{job_id}/checkpoints").get("latest") or {}).get("completed") or {}
    return int(latest.get("latest_ack_timestamp") or 0)


def checkpoints_completed_since(settings: Settings, job_id: str, since_ms: float) -> int:
    """How many checkpoints triggered after ``since_ms`` (epoch ms) have completed, from the job's recent history."""
    history = rest(settings, f"/jobs/{job_id}/checkpoints").get("history") or []
    return sum(1 for c in history if c.get("status") == "COMPLETED" and c.get("trigger_timestamp", 0) > since_ms)


def operator_metric(settings: Settings, job_id: str, name: str, vertex_has: str = "") -> float:
    """Sum over the job's subtasks of an operator metric, in vertices whose plan description has ``vertex_has``."""
    total = 0.0
    described = ({n["id"]: n.get("description", "") for n in rest(settings, f"/jobs/{job_id}/plan")["plan"]["nodes"]}
                 if vertex_has else {})
    for vertex in rest(settings, f"/jobs/{job_id}").get("vertices", []):
        if vertex_has and vertex_has not in described.get(vertex["id"], ""):
            continue
        base = f"/jobs/{job_id}/vertices/{vertex['id']}/metrics"
        for m in rest(settings, base):
            if m["id"].endswith("." + name):
                got = rest(settings, f"{base}?get={urllib.parse.quote(m['id'], safe='')}")
                total += sum(float(x["value"]) for x in got if x.get("value") not in (None, ""))
    return total


def vertex_sum(settings: Settings, job_id: str, vertex: str, metric: str) -> float:
    """A metric summed over the vertex's subtasks (0 while it is not reported)."""
    got = rest(settings, f"/jobs/{job_id}/vertices/{vertex}/subtasks/metrics?get={urllib.parse.quote(metric)}&agg=sum")
    return float(got[0]["sum"]) if got else 0.0


def source_vertices(settings: Settings, job_id: str) -> dict[str, str]:
    """vertex id -> the ``numRecordsOut`` metric of its source operator, for every source vertex ({} until all
    are registered)."""
    out: dict[str, str] = {}
    for v in rest(settings, f"/jobs/{job_id}")["vertices"]:
        if v["name"].startswith("Source:"):
            ids = [m["id"] for m in rest(settings, f"/jobs/{job_id}/vertices/{v['id']}/subtasks/metrics")]
            name = next((i for i in ids if i.startswith("Source__") and i.endswith(".numRecordsOut")), None)
            if name is None:
                return {}
            out[v["id"]] = name
    return out


def checkpoint_stalls(settings: Settings, job_id: str, since_ms: float) -> list[dict[str, Any]]:
    """Per vertex, over the completed checkpoints triggered at or after ``since_ms`` (those still in Flink's
    history): the longest synchronous part (the task thread is busy with it and processes no record), the
    longest asynchronous part, barrier alignment and start delay, in ms; the longest synchronous part first.

    The synchronous part is where a sink's work at the barrier shows (an Iceberg writer closing its files), and
    every operator chained into the same task waits for it.
    """
    names = {v["id"]: v["name"] for v in rest(settings, f"/jobs/{job_id}").get("vertices", [])}
    history = rest(settings, f"/jobs/{job_id}/checkpoints").get("history", [])
    done = [c["id"] for c in history if c.get("status") == "COMPLETED" and c.get("trigger_timestamp", 0) >= since_ms]
    worst: dict[str, dict[str, Any]] = {}
    for cid in done:
        for vid in rest(settings, f"/jobs/{job_id}/checkpoints/details/{cid}").get("tasks", {}):
            summary = rest(settings, f"/jobs/{job_id}/checkpoints/details/{cid}/subtasks/{vid}").get("summary", {})
            duration = summary.get("checkpoint_duration", {})
            got = {"sync_ms": duration.get("sync", {}).get("max", 0), "async_ms": duration.get("async", {}).get("max", 0),
                   "alignment_ms": summary.get("alignment", {}).get("duration", {}).get("max", 0),
                   "start_delay_ms": summary.get("start_delay", {}).get("max", 0)}
            row = worst.setdefault(vid, {"vertex": names.get(vid, vid), "checkpoints": 0,
                                         **{k: 0 for k in got}})
            row["checkpoints"] += 1
            for k, v in got.items():
                row[k] = max(row[k], int(v or 0))
    return sorted(worst.values(), key=lambda r: -r["sync_ms"])
