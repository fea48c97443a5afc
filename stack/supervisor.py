"""Keeps the Flink JobManager and the TaskManagers running, restarting each when it dies (as systemd would),
and brings back the jobs a crashed JobManager took with it.

Run as ``python -m stack.supervisor``; SIGTERM stops them (TaskManagers first) and then itself. The
children's PIDs are in .loanrisk/run/flink-jobmanager.pid, flink-taskmanager.pid and, with
flink.taskmanagers > 1, flink-taskmanager-2.pid and so on. They run from the cluster's FLINK_HOME
(flink.cluster_home), which may share nothing with the client's.

A standalone JobManager has no high availability here (Flink 2.1 offers it through ZooKeeper or
Kubernetes only), so a new one starts without the jobs of the one that died. The supervisor then
restarts the TaskManagers too (their tasks belong to jobs no JobManager knows any more, and would hold
slots and keep writing to the sinks until their heartbeat times out), and resubmits, once, every job
submitted through riskctl that was running: from its latest completed checkpoint, with the arguments it
was submitted with (stack/recovery.py decides which).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loanrisk.settings import Settings, get_settings
from stack.flink_conf import flink_env
from stack.process import PidFile, is_alive, spawn, stop_pid
from stack.recovery import ALIVE, ResumePolicy, RestorePoint, Submission

POLL_S = 2.0  # how often the keeper looks at the JobManager's jobs: a cancel this close to a crash is missed
RESUBMIT_ATTEMPTS = 5
log = logging.getLogger("stack.supervisor")


@dataclass
class Child:
    """One supervised Flink process."""

    role: str
    script: str
    pid: int | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)


def say(message: str) -> None:
    """One line in the supervisor's log (the flink service log)."""
    log.info(message)


class JobKeeper:
    """Watches the JobManager's jobs and resubmits the ones a JobManager crash lost (see ResumePolicy).

    ``tick`` does one round; the supervisor runs it on a thread of its own so that a slow REST call or a
    `flink run` never holds up restarting a dead process. The collaborators are parameters for the tests.
    """

    def __init__(self, settings: Settings, policy: ResumePolicy | None = None,
                 list_jobs: Callable[[], list[dict[str, Any]]] | None = None,
                 cluster_ready: Callable[[], bool] | None = None,
                 latest: Callable[[str], RestorePoint | None] | None = None,
                 resubmit: Callable[[Submission, RestorePoint], str] | None = None,
                 records: Callable[[], list[Submission]] | None = None) -> None:
        from stack import flink_client, recovery
        self.settings = settings
        self.policy = policy or ResumePolicy()
        self.lock = threading.Lock()
        self.list_jobs = list_jobs or (lambda: flink_client.list_jobs(settings))
        self.cluster_ready = cluster_ready or self._taskmanager_registered
        self.latest = latest or (lambda name: recovery.latest_restore_point(settings, name))
        self.resubmit = resubmit or (lambda sub, point: recovery.resubmit(settings, sub, point))
        self.records = records or (lambda: recovery.submissions(settings))
        self.attempts: dict[str, int] = {}

    def _taskmanager_registered(self) -> bool:
        from stack.flink_client import rest
        return int(rest(self.settings, "/overview").get("taskmanagers", 0)) >= self.settings.flink.taskmanagers

    # -- called by the supervisor's main loop -------------------------------------------------------
    def jobmanager_lost(self) -> None:
        """The JobManager died: decide now, from what was seen of it, which jobs to bring back."""
        records = self.records()
        with self.lock:
            self.policy.jobmanager_lost(records)
            names = sorted(self.policy.pending)
        if names:
            say(f"will resume {', '.join(names)} from the latest checkpoint once the cluster is back")

    def jobmanager_started(self) -> None:
        """A new JobManager process started."""
        with self.lock:
            self.policy.jobmanager_started()

    # -- one round ----------------------------------------------------------------------------------
    def tick(self) -> None:
        """Look at the jobs; resubmit what is pending once a TaskManager has registered."""
        from loanrisk.errors import StackError
        with self.lock:
            generation = self.policy.generation
        try:
            jobs = self.list_jobs()
        except StackError:
            return  # the JobManager is down or busy: look again next round
        with self.lock:
            self.policy.observe(generation, jobs)
            pending = dict(self.policy.pending)
        if not pending:
            return
        try:
            if not self.cluster_ready():
                return
        except StackError:
            return
        for name, sub in pending.items():
            self._resume(name, sub, jobs, generation)

    def _resume(self, name: str, sub: Submission, jobs: list[dict[str, Any]], generation: int) -> None:
        from loanrisk.errors import StackError
        live = [j for j in jobs if j.get("name") == name and j.get("state") in ALIVE]
        if live:
            say(f"{name} is running again as job {live[0]['jid']}: not resubmitting it")
            with self.lock:
                self.policy.settled(name)
            return
        try:
            point = self.latest(name)
        except Exception as exc:  # noqa: BLE001 - the object store may be down: try again next round
            log.warning(f"cannot list the checkpoints of {name} yet ({type(exc).__name__}: {exc})")
            return
        if point is None:
            log.error(f"cannot resume {name}: it has no completed checkpoint or savepoint; `riskctl job submit` starts "
                "it without state")
            with self.lock:
                self.policy.settled(name)
            return
        try:
            job_id = self.resubmit(sub, point)
        except (StackError, OSError, ValueError) as exc:
            self.attempts[name] = self.attempts.get(name, 0) + 1
            if self.attempts[name] >= RESUBMIT_ATTEMPTS:
                log.error(f"gave up resuming {name} after {self.attempts[name]} attempts ({exc}); resume it with "
                    "`riskctl job resume`")
                with self.lock:
                    self.policy.settled(name)
            else:
                log.warning(f"resubmitting {name} failed, trying again ({exc})")
            return
        self.attempts.pop(name, None)
        with self.lock:
            self.policy.resubmitted(name, job_id, generation)
        say(f"resumed {name} as job {job_id} from {point.describe()}")

    def run_forever(self, stopping: threading.Event) -> None:
        """``tick`` every POLL_S seconds until ``stopping`` is set."""
        while not stopping.wait(POLL_S):
            try:
                self.tick()
            except Exception as exc:  # the keeper must outlive any one bad round
                log.warning("job keeper round failed: %s: %s", type(exc).__name__, exc, exc_info=True)


def taskmanager_role(n: int) -> str:
    """Name of the n-th TaskManager (from 1): its PID and log files are flink-<role>.pid and .log."""
    return "taskmanager" if n == 1 else f"taskmanager-{n}"


def main() -> int:
    """Start the JobManager and the TaskManagers and restart them until asked to stop."""
    import argparse
    argparse.ArgumentParser(prog="stack.supervisor").add_argument("--state")  # recorded for `ps`, read via env
    from loanrisk.logs import setup_logging
    setup_logging()
    settings = get_settings()
    state = settings.state_dir
    env = flink_env(settings, home=settings.cluster_flink_home)
    taskmanagers = [Child(taskmanager_role(n), "taskmanager.sh") for n in range(1, settings.flink.taskmanagers + 1)]
    jobmanager = Child("jobmanager", "jobmanager.sh")
    children = [jobmanager, *taskmanagers]
    stopping = False
    keeper_stop = threading.Event()
    keeper = JobKeeper(settings)

    def on_term(_sig: int, _frm: object) -> None:
        nonlocal stopping
        stopping = True
        keeper_stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def start(child: Child) -> None:
        home = settings.cluster_flink_home
        cmd = [str(home / "bin" / child.script), "start-foreground"]
        child.pid = spawn(cmd, state / "logs" / f"flink-{child.role}.log", env=env, cwd=home)
        child.started_at = time.monotonic()
        PidFile(state / "run" / f"flink-{child.role}.pid", "flink").write(child.pid)
        say(f"started flink {child.role} pid {child.pid} (restarts so far: {child.restarts})")

    for child in children:
        start(child)
    keeper.jobmanager_started()
    threading.Thread(target=keeper.run_forever, args=(keeper_stop,), name="job-keeper", daemon=True).start()
    while not stopping:
        time.sleep(0.5)
        for child in children:
            if stopping or child.pid is None:
                continue
            try:
                os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not is_alive(child.pid):
                child.restarts += 1
                log.warning(f"flink {child.role} pid {child.pid} exited; restarting")
                if child is jobmanager:
                    keeper.jobmanager_lost()
                # Back off when a process keeps dying right after start.
                if time.monotonic() - child.started_at < 10:
                    time.sleep(min(30, 2 * child.restarts))
                if stopping:
                    continue
                start(child)
                if child is jobmanager:
                    keeper.jobmanager_started()
                    for tm in taskmanagers:
                        if tm.pid is not None and is_alive(tm.pid):
                            say(f"restarting flink {tm.role} pid {tm.pid}: its tasks belong to the lost "
                                "JobManager's jobs")
                            stop_pid(tm.pid, "flink", timeout_s=15)
                            start(tm)
    keeper_stop.set()
    for child in reversed(children):
        if child.pid is not None:
            stop_pid(child.pid, "flink", timeout_s=30)
            PidFile(state / "run" / f"flink-{child.role}.pid", "flink").clear()
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
