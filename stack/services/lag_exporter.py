"""The pipeline exporter (stack/lag_exporter.py: consumer lag, window freshness) on 127.0.0.1:<prometheus.port + 1>."""

from __future__ import annotations

import sys

from loanrisk.settings import REPO_ROOT
from stack.process import http_ok
from stack.services.base import Service


class LagExporter(Service):
    """Serves loanrisk_kafka_consumer_lag and loanrisk_window_age_seconds to Prometheus's "loanrisk" scrape job."""

    name = "lag_exporter"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.prometheus.exporter_port}

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "stack.lag_exporter", "--state", str(self.home)]

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(REPO_ROOT)}

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.settings.prometheus.exporter_port}/metrics")
