"""stack.log_format: with json every line our processes log on stderr is one JSON object; with text, lines for people.

Each process runs for real (riskctl, the supervisor with stand-in Flink scripts, the lag exporter against
ports nobody listens on), its stderr read line by line.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from loanrisk.settings import REPO_ROOT
from stack.isolated import free_port_block

KEYS = {"time", "level", "logger", "message"}
# Loops until killed; the command line keeps the folder name (".../flink/bin/...") the supervisor checks.
STAND_IN_FLINK_SCRIPT = "#!/bin/sh\nwhile true; do sleep 1; done\n"


def process_env(tmp: Path, log_format: str, **settings: str) -> dict[str, str]:
    """This checkout's packages first, a state folder of its own, no YAML file, the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOANRISK_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "LOANRISK_CONFIG": str(tmp / "none.yaml"),
                "LOANRISK_STACK__STATE_DIR": str(tmp / "state"), "LOANRISK_STACK__INSTALL_DIR": str(tmp / "install"),
                "LOANRISK_STACK__LOG_FORMAT": log_format, **settings})
    (tmp / "none.yaml").write_text("{}\n")
    return env


def json_lines(stderr: str) -> list[dict[str, object]]:
    """Every stderr line parsed as JSON; fails naming the first line that is not a log object."""
    records = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(record, dict) and KEYS <= record.keys(), line
        records.append(record)
    return records


def wait_for_line(proc: subprocess.Popen, text: str, timeout_s: float) -> list[str]:
    """stderr lines of ``proc`` up to and including the first one containing ``text``."""
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if text in line:
            return seen
    proc.kill()
    raise AssertionError(f"no line with {text!r} within {timeout_s} s; got {seen}")


def stop(proc: subprocess.Popen, seen: list[str]) -> str:
    """SIGTERM ``proc``, wait for it, and return all its stderr."""
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    return "\n".join([*seen, rest])


def test_riskctl_logs_json_lines_when_the_format_is_json(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "riskctl.main", "-vv", "dashboards", "--help"],
                         env=process_env(tmp_path, "json"), capture_output=True, text=True, timeout=120, check=True)
    records = json_lines(out.stderr)
    assert {"level": "DEBUG", "logger": "riskctl"}.items() <= records[0].items()
    assert "Usage:" in out.stdout  # what the user asked for stays plain output


def test_riskctl_logs_text_by_default_and_only_warnings_without_v(tmp_path: Path) -> None:
    env = process_env(tmp_path, "text")
    quiet = subprocess.run([sys.executable, "-m", "riskctl.main", "dashboards", "--help"], env=env,
                           capture_output=True, text=True, timeout=120, check=True)
    assert quiet.stderr == ""
    loud = subprocess.run([sys.executable, "-m", "riskctl.main", "--log-level", "debug", "dashboards", "--help"],
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    assert " DEBUG riskctl: " in loud.stderr and not loud.stderr.startswith("{")


def test_riskctl_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version
    out = subprocess.run([sys.executable, "-m", "riskctl.main", "--version"], capture_output=True, text=True,
                         timeout=120, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == f"riskctl, version {version('loan-risk')}"


def test_the_supervisor_logs_json_lines_as_it_starts_restarts_and_stops_flink(tmp_path: Path) -> None:
    bin_dir = tmp_path / "install" / "flink" / "bin"
    bin_dir.mkdir(parents=True)
    for script in ("jobmanager.sh", "taskmanager.sh"):
        (bin_dir / script).write_text(STAND_IN_FLINK_SCRIPT)
        (bin_dir / script).chmod(0o755)
    rest_port = free_port_block(1, random.Random(os.getpid()))  # no Flink answers there: the job keeper idles
    env = process_env(tmp_path, "json", LOANRISK_FLINK__REST_PORT=str(rest_port))
    proc = subprocess.Popen([sys.executable, "-m", "stack.supervisor"], env=env, stderr=subprocess.PIPE, text=True)
    seen = wait_for_line(proc, "started flink taskmanager", 60)
    pid_file = tmp_path / "state" / "run" / "flink-taskmanager.pid"
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    seen += wait_for_line(proc, "started flink taskmanager", 60)
    records = json_lines(stop(proc, seen))
    assert proc.returncode == 0
    said = [(r["level"], r["logger"], r["message"]) for r in records]
    assert ("WARNING", "stack.supervisor") == said[2][:2] and "exited; restarting" in str(said[2][2]), said
    assert said[-1] == ("INFO", "stack.supervisor", "stopped"), said


def test_the_lag_exporter_logs_json_lines_with_kafka_and_postgresql_away(tmp_path: Path) -> None:
    base = free_port_block(4, random.Random(os.getpid() + 1))
    env = process_env(tmp_path, "json", LOANRISK_KAFKA__PORT=str(base), LOANRISK_KAFKA__CONTROLLER_PORT=str(base + 1),
                      LOANRISK_POSTGRES__PORT=str(base + 2), LOANRISK_PROMETHEUS__PORT=str(base + 2))
    proc = subprocess.Popen([sys.executable, "-m", "stack.lag_exporter", "--state", str(tmp_path)], env=env,
                            stderr=subprocess.PIPE, text=True)
    seen = wait_for_line(proc, "serving /metrics", 60)
    with urllib.request.urlopen(f"http://127.0.0.1:{base + 3}/metrics", timeout=60) as resp:
        metrics = resp.read().decode()
    assert "loanrisk_kafka_up 0.0" in metrics and "loanrisk_serving_up 0.0" in metrics
    records = json_lines(stop(proc, seen))
    assert records[-1]["message"] == "stopped"
