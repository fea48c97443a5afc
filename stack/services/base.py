"""The life cycle every local service shares: prepare, spawn, wait for health, initialise, stop."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from loanrisk.errors import StackError
from loanrisk.settings import Settings
from stack.process import PidFile, is_alive, port_in_use, spawn, stop_pid, wait_for


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `riskctl stack status`."""

    name: str
    pid: int | None
    ports: str
    healthy: bool
    log: Path


class Service(ABC):
    """A local process of the stack, tracked by a PID file under .loanrisk/run/."""

    name: str = "service"
    user: str | None = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.state_dir
        self.home = self.state / self.name
        self.pidfile = PidFile(self.state / "run" / f"{self.name}.pid", self.marker)

    # -- what each service defines ------------------------------------------------------------
    @property
    def marker(self) -> str:
        """A string the process's command line contains (checked before any signal is sent)."""
        return str(self.state / self.name)

    @property
    @abstractmethod
    def ports(self) -> dict[str, int]:
        """Ports this service binds on 127.0.0.1, by purpose."""

    @abstractmethod
    def command(self) -> list[str]:
        """The command that runs the service in the foreground."""

    @abstractmethod
    def healthy(self) -> bool:
        """True when the service answers over its real protocol."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Write configuration and initialise storage (idempotent)."""

    def env(self) -> dict[str, str]:
        """Extra environment variables for the process."""
        return {}

    def after_start(self) -> None:  # noqa: B027 - optional hook
        """Create what the platform needs inside the running service (idempotent)."""

    # -- shared life cycle --------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        """Where the process's output goes."""
        return self.state / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The running process's PID, or None."""
        return self.pidfile.read()

    def busy_ports(self) -> list[tuple[str, int]]:
        """Configured ports already taken by something else."""
        host = "127.0.0.1"
        return [(purpose, port) for purpose, port in self.ports.items() if port_in_use(host, port)]

    def start(self, timeout_s: float) -> bool:
        """Start unless already running; True when it was started now. Raises StackError on failure."""
        if self.pid() is not None:
            if not wait_for(self.healthy, timeout_s):
                raise StackError(f"{self.name} is running (pid {self.pid()}) but not healthy; see {self.log_path}")
            self.after_start()
            return False
        busy = self.busy_ports()
        if busy:
            purpose, port = busy[0]
            raise StackError(f"port {port} ({self.name} {purpose}) is already in use: free it or set another port "
                             f"in the settings (riskctl doctor lists them)")
        self.prepare()
        pid = spawn(self.command(), self.log_path, env=self.env(), cwd=self.home, user=self.user)
        self.pidfile.write(pid)
        if not wait_for(self.healthy, timeout_s, alive=lambda: is_alive(pid)):
            alive = is_alive(pid)
            self.stop()
            state = "did not become healthy in time" if alive else "exited during start-up"
            raise StackError(f"{self.name} {state}; see {self.log_path}")
        self.after_start()
        return True

    def stop(self) -> bool:
        """Stop the process recorded in the PID file; True when nothing of it is left."""
        pid = self.pidfile.read()
        gone = True if pid is None else stop_pid(pid, self.marker)
        if gone:
            self.pidfile.clear()
        return gone

    def status(self) -> ServiceStatus:
        """PID, ports and health right now."""
        pid = self.pid()
        ports = ",".join(str(p) for p in self.ports.values())
        return ServiceStatus(self.name, pid, ports, bool(pid) and self.healthy(), self.log_path)

    def reset(self) -> None:
        """Delete this service's data (used by `riskctl stack down --purge`)."""
        if self.home.exists():
            shutil.rmtree(self.home)
