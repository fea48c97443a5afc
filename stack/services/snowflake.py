"""The Snowflake endpoint (fakesnow server mode, persistent) that the real connector talks to."""

from __future__ import annotations

import sys

from stack.process import tcp_ready
from stack.services.base import Service


class SnowflakeEndpoint(Service):
    """Local stand-in for a Snowflake account, spoken to over HTTP by snowflake-connector-python."""

    name = "snowflake"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.snowflake.port}

    def prepare(self) -> None:
        (self.home / "db").mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "stack.snowflake_endpoint", "--host", "127.0.0.1",
                "--port", str(self.settings.snowflake.port), "--db-path", str(self.home / "db")]

    def env(self) -> dict[str, str]:
        from loanrisk.settings import REPO_ROOT
        return {"PYTHONPATH": str(REPO_ROOT)}

    def healthy(self) -> bool:
        return tcp_ready("127.0.0.1", self.settings.snowflake.port)
