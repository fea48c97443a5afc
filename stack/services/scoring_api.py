"""The scoring API (scoring_api/, `riskctl serve`) as an optional service of the local stack, on api.host:api.port."""

from __future__ import annotations

import sys

from loanrisk.settings import REPO_ROOT
from stack.process import http_ok
from stack.services.base import Service


class ScoringApi(Service):
    """Answers POST /v1/score; healthy once the process serves /healthz (/readyz says whether it can score)."""

    name = "api"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.api.port}

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        # By module name, not by import: the stack sits below the API in the layers.
        return [sys.executable, "-m", "scoring_api", "--state", str(self.home)]

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(REPO_ROOT)}

    def healthy(self) -> bool:
        return http_ok(f"http://{self.settings.api.host}:{self.settings.api.port}/healthz")
