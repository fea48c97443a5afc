"""Keeps the Flink JobManager and TaskManager running, restarting either when it dies (as systemd would).

Run as ``python -m stack.supervisor``; SIGTERM stops both (TaskManager first) and then itself.
The children's PIDs are in .loanrisk/run/flink-jobmanager.pid and flink-taskmanager.pid.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field

from loanrisk.settings import get_settings
from stack.flink_conf import flink_env
from stack.process import PidFile, is_alive, spawn, stop_pid


@dataclass
class Child:
    """One supervised Flink process."""

    role: str
    script: str
    pid: int | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)


def main() -> int:
    """Start both processes and restart them until asked to stop."""
    import argparse
    argparse.ArgumentParser(prog="stack.supervisor").add_argument("--state")  # recorded for `ps`, read via env
    settings = get_settings()
    state = settings.state_dir
    env = flink_env(settings)
    children = [Child("jobmanager", "jobmanager.sh"), Child("taskmanager", "taskmanager.sh")]
    stopping = False

    def on_term(_sig: int, _frm: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def start(child: Child) -> None:
        cmd = [str(settings.flink_home / "bin" / child.script), "start-foreground"]
        child.pid = spawn(cmd, state / "logs" / f"flink-{child.role}.log", env=env, cwd=settings.flink_home)
        child.started_at = time.monotonic()
        PidFile(state / "run" / f"flink-{child.role}.pid", "flink").write(child.pid)
        print(f"supervisor: started flink {child.role} pid {child.pid} (restarts so far: {child.restarts})",
              flush=True)

    for child in children:
        start(child)
    while not stopping:
        time.sleep(0.5)
        for child in children:
            if stopping or child.pid is None:
                continue
            try:
                import os
                os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not is_alive(child.pid):
                child.restarts += 1
                print(f"supervisor: flink {child.role} pid {child.pid} exited; restarting", flush=True)
                # Back off when a process keeps dying right after start.
                if time.monotonic() - child.started_at < 10:
                    time.sleep(min(30, 2 * child.restarts))
                if not stopping:
                    start(child)
    for child in reversed(children):
        if child.pid is not None:
            stop_pid(child.pid, "flink", timeout_s=30)
            PidFile(state / "run" / f"flink-{child.role}.pid", "flink").clear()
    print("supervisor: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
