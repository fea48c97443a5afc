"""The risk job on a cluster that shares nothing with its client: two TaskManagers run from a bare FLINK_HOME
(Flink's own lib/ and its plugins, no connector, no function of ours), the job at parallelism 4 ships its jars
and its Python environment (jobs/shipping.py), and one TaskManager is killed mid-stream. Every sink must hold
each event once. Full tier: it runs a stack of its own beside the session's."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loanrisk.settings import Settings
from stack.flink_client import all_tasks_running
from tests.conftest import INSTALL_DIR, isolated_stack
from tests.stack.conftest import publish_champion
from tests.stack.reliability_helpers import (
    Outgoing,
    assert_exactly_once,
    descendants,
    exactly_once_report,
    kill_taskmanager,
    restarted_since,
    restarts,
    send_tracked,
    two_more_checkpoints,
    valid_stream,
    wait_all_landed,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.full]

CLUSTER = {"LOANRISK_FLINK__TASKMANAGERS": "2", "LOANRISK_FLINK__TASKMANAGER_SLOTS": "2",
           "LOANRISK_FLINK__PARALLELISM": "4", "LOANRISK_FLINK__CLUSTER_HOME": "bare",
           "LOANRISK_FLINK__TASKMANAGER_MEMORY": "4096m", "LOANRISK_FLINK__CHECKPOINT_INTERVAL_MS": "5000",
           "LOANRISK_MODEL__POLL_INTERVAL_S": "2"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Settings]:
    """A stack of its own with the two-TaskManager cluster, on free ports; stopped by PID at the end."""
    if not (INSTALL_DIR / "flink-bare" / "lib").exists():
        pytest.fail("run `riskctl setup` (make setup) before the stack tests: it lays out flink-bare")
    with isolated_stack(f"cluster-{os.getpid()}", CLUSTER) as settings:
        yield settings


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _taskmanager_pids(settings: Settings) -> dict[str, int]:
    from stack.process import PidFile
    from stack.supervisor import taskmanager_role
    roles = [taskmanager_role(n) for n in range(1, settings.flink.taskmanagers + 1)]
    pids = {r: PidFile(settings.state_dir / "run" / f"flink-{r}.pid", "flink").read() for r in roles}
    return {r: p for r, p in pids.items() if p is not None}


def test_two_taskmanagers_from_a_bare_flink_home_run_the_shipped_job_exactly_once_through_a_taskmanager_kill(
        cluster: Settings) -> None:
    from jobs.shipping import ARCHIVE_DIR, shipped_jars
    from jobs.submit import submit_risk_job
    from stack.flink_client import cancel, rest
    s = cluster
    overview = rest(s, "/overview")
    assert overview["taskmanagers"] == 2 and overview["slots-total"] == 4, overview
    tms = _taskmanager_pids(s)
    assert len(tms) == 2
    for pid in tms.values():
        # The cluster's class path is the bare home's: no connector, no function of ours.
        classpath = " ".join(_cmdline(pid))
        assert str(INSTALL_DIR / "flink-bare") in classpath
        assert not any(jar.name in classpath for jar in shipped_jars(s)), "a shipped jar is on the cluster's path"

    version = publish_champion(s, seed=11, family="logistic_regression")
    job = submit_risk_job(s)
    try:
        plan = rest(s, f"/jobs/{job}/plan")["plan"]["nodes"]
        assert {n["parallelism"] for n in plan} >= {4}, [(n["description"][:40], n["parallelism"]) for n in plan]
        wait_until(lambda: all_tasks_running(s, job), 300, "every task of the job RUNNING", s, job, 2)

        events = valid_stream(seed=7331, customers=40, start="2020-02-01T00:00:00Z")
        msgs = [Outgoing(e.topic, e.key, e.value_bytes, "valid", e.event_id) for e in events]
        before = exactly_once_report(s, [])
        sent: list = []
        sender = threading.Thread(target=lambda: sent.append(send_tracked(s, msgs, pace_per_s=len(msgs) / 60)))
        sender.start()
        time.sleep(15)
        workers = {r: [c for c in descendants(pid) if any(ARCHIVE_DIR in a for a in _cmdline(c))]
                   for r, pid in tms.items()}
        assert all(workers.values()), f"a TaskManager runs no Python worker from the shipped environment: {workers}"
        restarts_before = restarts(s, job)
        killed_at = time.time()
        killed = kill_taskmanager(s, "taskmanager-2")
        wait_until(lambda: restarted_since(s, job, killed_at * 1000), 180, "the job to restart", every_s=1)
        running_s = wait_until(lambda: rest(s, "/overview")["taskmanagers"] == 2 and all_tasks_running(s, job),
                               300, "both TaskManagers back and every task RUNNING", s, job, 2)
        sender.join(300)
        assert sent, "the producer did not finish"
        landed_s = wait_all_landed(s, job, events, 600, "every event of the stream landed after the kill")
        two_more_checkpoints(s, job)
        after = exactly_once_report(s, events)
        print(f"\ncluster: 2 TaskManagers, parallelism 4; TaskManager 2 (pid {killed}) killed; every task RUNNING "
              f"{running_s:.0f}s after the restart; every event landed {landed_s:.0f}s after the producer finished;"
              f" failovers {restarts_before} -> {restarts(s, job)}; champion {version}")
        print("exactly-once report:", after)
        assert restarts(s, job) > restarts_before, "the kill did not restart the job"
        assert_exactly_once(before, after, "TaskManager kill on a two-TaskManager cluster")
    finally:
        cancel(s, job)
