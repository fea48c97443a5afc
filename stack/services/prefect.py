"""The Prefect server (SQLite under .loanrisk/prefect), started with the stack behind a flag."""

from __future__ import annotations

import sys
from pathlib import Path

from stack.process import http_ok
from stack.services.base import Service


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
                "PREFECT_UI_ENABLED": "true", "PREFECT_LOGGING_LEVEL": "WARNING"}

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.prefect.url}/health")
