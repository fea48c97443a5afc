"""Alertmanager (Debian's package) on 127.0.0.1, routing the alert rules' alerts to one webhook."""

from __future__ import annotations

import os
import shutil
from typing import Any

from loanrisk.errors import StackError
from loanrisk.settings import AlertingSettings
from stack.process import http_ok
from stack.services.base import Service


def alertmanager_config(alerting: AlertingSettings, webhook: dict[str, Any] | None) -> dict[str, Any]:
    """One route for every alert, grouped by name; ``webhook`` is the receiver's webhook_config (url or url_file).

    docker/alertmanager.yml is this with the default settings and a url_file (a unit test compares them).
    Without a webhook the receiver has no configuration: Alertmanager then only shows the alerts.
    """
    receiver: dict[str, Any] = {"name": "webhook"}
    if webhook is not None:
        receiver["webhook_configs"] = [{**webhook, "send_resolved": True}]
    return {"route": {"receiver": "webhook", "group_by": ["alertname"], "group_wait": f"{alerting.group_wait_s}s",
                      "group_interval": f"{alerting.group_interval_s}s",
                      "repeat_interval": f"{alerting.repeat_interval_h:g}h"},
            "receivers": [receiver]}


class Alertmanager(Service):
    """The Alertmanager Prometheus sends its alerts to."""

    name = "alertmanager"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.alerting.port}

    def prepare(self) -> None:
        import yaml
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        url = self.settings.alerting.webhook()
        config = alertmanager_config(self.settings.alerting, {"url": url} if url else None)
        path = self.home / "alertmanager.yml"
        # The webhook URL may carry a token: the file is the owner's only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(config, fh, sort_keys=False)

    def command(self) -> list[str]:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise StackError("alertmanager is not installed: apt-get install prometheus-alertmanager "
                             "(riskctl setup does it)")
        # An empty cluster address turns off the gossip listener, which would bind every interface.
        return [binary, f"--config.file={self.home / 'alertmanager.yml'}", f"--storage.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.settings.alerting.port}", "--cluster.listen-address=",
                "--log.level=warn"]

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.alerting.url}/-/ready")
