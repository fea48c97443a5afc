"""CPU seconds per stack service (its process tree, read from /proc), to show where a benchmark's cores go."""

from __future__ import annotations

import os
from pathlib import Path

from loanrisk.settings import Settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user + system CPU seconds) for every process this user can read."""
    out: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return out


def service_roots(settings: Settings) -> dict[str, int]:
    """Each running service's PID, with Flink's TaskManager and JobManager on their own (the Python UDF
    workers are the TaskManager's children, so they count as the TaskManager's)."""
    from stack.services import all_services
    roots: dict[str, int] = {}
    for svc in all_services(settings, with_prefect=False):
        pid = svc.pid()
        if pid:
            roots[svc.name] = pid
        if svc.name == "flink":
            for role in ("taskmanager", "jobmanager"):
                child = svc.child_pid(role)  # type: ignore[attr-defined]
                if child:
                    roots[f"flink {role}"] = child
    return roots


def cpu_by_service(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far per service tree; a process counts under its nearest listed ancestor, and every
    other process on the machine under ``other``."""
    procs = _processes()
    by_pid = {pid: name for name, pid in roots.items()}
    totals = {name: 0.0 for name in roots} | {"other": 0.0}
    for pid, (_, seconds) in procs.items():
        p, owner = pid, "other"
        for _ in range(64):
            if p in by_pid:
                owner = by_pid[p]
                break
            if p not in procs or procs[p][0] in (0, p):
                break
            p = procs[p][0]
        totals[owner] += seconds
    return totals


def cores_between(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Average cores per service between two ``cpu_by_service`` readings ``seconds`` apart (exited processes
    drop out of ``after``, so a negative share is read as 0)."""
    return {k: max(after.get(k, 0.0) - before.get(k, 0.0), 0.0) / seconds for k in after}
