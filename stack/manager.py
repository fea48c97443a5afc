"""`riskctl stack up|down|status|logs`: the local stack as a whole, in dependency order."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from loanrisk.errors import StackError
from loanrisk.settings import Settings
from stack.services import all_services
from stack.services.base import Service, ServiceStatus

Progress = Callable[[str], None]


def _services(settings: Settings, with_prefect: bool | None, with_api: bool | None = None) -> list[Service]:
    return all_services(settings, with_prefect, with_api)


def up(settings: Settings, with_prefect: bool | None = None, progress: Progress = print,
       with_api: bool | None = None) -> dict[str, float]:
    """Start every service not yet running and wait for each to be healthy; returns seconds per service."""
    services = _services(settings, with_prefect, with_api)
    # Check every port first, so a clash fails before anything starts.
    for svc in services:
        if svc.pid() is None:
            busy = svc.busy_ports()
            if busy:
                purpose, port = busy[0]
                raise StackError(f"port {port} ({svc.name} {purpose}) is already in use: free it or set another "
                                 "port in the settings (riskctl doctor lists them)")
    timings: dict[str, float] = {}
    for svc in services:
        t = time.monotonic()
        started = svc.start(settings.stack.health_timeout_s)
        timings[svc.name] = time.monotonic() - t
        verb = "started" if started else "already running"
        progress(f"{svc.name:<10} {verb:<16} pid {svc.pid()}  ports {','.join(map(str, svc.ports.values()))}  "
                 f"log {svc.log_path}")
    return timings


def down(settings: Settings, progress: Progress = print) -> list[str]:
    """Stop every service this stack started (reverse order, by PID); returns the names left running."""
    left = []
    for svc in reversed(_services(settings, with_prefect=True, with_api=True)):
        pid = svc.pid()
        if pid is None:
            continue
        if svc.stop():
            progress(f"{svc.name:<10} stopped (pid {pid})")
        else:
            left.append(svc.name)
            progress(f"{svc.name:<10} did NOT stop (pid {pid})")
    return left


def status(settings: Settings) -> list[ServiceStatus]:
    """One status row per service (Prefect included)."""
    return [svc.status() for svc in _services(settings, with_prefect=True, with_api=True)]


def log_path(settings: Settings, name: str) -> Path:
    """The log file of service ``name``."""
    for svc in _services(settings, with_prefect=True, with_api=True):
        if svc.name == name:
            return svc.log_path
    extra = settings.state_dir / "logs" / f"{name}.log"
    if extra.exists():
        return extra
    names = ", ".join(s.name for s in _services(settings, with_prefect=True, with_api=True))
    raise StackError(f"no service called {name!r}; choose one of: {names}")
