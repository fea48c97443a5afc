"""The Prefect server (SQLite under .loanrisk/prefect), started with the stack behind a flag."""

from __future__ import annotations

import sys
from pathlib import Path

from loanrisk.settings import PrefectSettings
from stack.process import http_ok
from stack.services.base import Service


def database_vacuum_env(prefect: PrefectSettings) -> dict[str, str]:
    """The Prefect server's own database vacuum, for flow runs as well as events (Prefect keeps flow runs forever by
    default): the schedules add hundreds of runs a day, each with its task runs, states and logs."""
    return {"PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
            "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(round(prefect.run_retention_days * 86_400)),
            "PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS": str(prefect.vacuum_interval_s)}


class PrefectServer(Service):
    """`prefect server start` on 127.0.0.1."""

    name = "prefect"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.prefect.port}

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        prefect = Path(sys.executable).parent / "prefect"
        return [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.settings.prefect.port)]

    @property
    def marker(self) -> str:
        return f"server start --host 127.0.0.1 --port {self.settings.prefect.port}"

    def env(self) -> dict[str, str]:
        return {"PREFECT_HOME": str(self.home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "true", "PREFECT_LOGGING_LEVEL": "WARNING",
                **database_vacuum_env(self.settings.prefect)}

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.prefect.url}/health")
