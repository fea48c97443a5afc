"""Prometheus (Debian's package) on 127.0.0.1, scraping Flink's Prometheus reporter, alerting Alertmanager."""

from __future__ import annotations

import re
import shutil
from typing import Any

from loanrisk.errors import StackError
from loanrisk.settings import REPO_ROOT
from stack.process import http_ok
from stack.services.base import Service


def flink_metric_targets(ports: str) -> list[str]:
    """Every port of the reporter's range (JobManager and TaskManagers each take the next free one)."""
    lo, _, hi = ports.partition("-")
    return [f"127.0.0.1:{p}" for p in range(int(lo), int(hi or lo) + 1)]


RULES = REPO_ROOT / "prometheus" / "rules" / "loan-risk.yml"
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration_s(text: str) -> int:
    """Seconds of a Prometheus duration such as ``2m`` or ``1h30m``."""
    parts = re.findall(r"(\d+)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def capped_rules(rules: dict[str, Any], for_max_s: int | None) -> dict[str, Any]:
    """The alert rules with every ``for:`` at most ``for_max_s`` (None: unchanged); the expressions as written."""
    if for_max_s is None:
        return rules
    groups = []
    for group in rules["groups"]:
        capped = [{**r, "for": f"{for_max_s}s"} if "for" in r and duration_s(r["for"]) > for_max_s else r
                  for r in group["rules"]]
        groups.append({**group, "rules": capped})
    return {**rules, "groups": groups}


class Prometheus(Service):
    """The Prometheus server with our scrape config and alert rules."""

    name = "prometheus"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.prometheus.port}

    def prepare(self) -> None:
        import yaml
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        rules = self.home / "rules.yml"
        rules.write_text(yaml.safe_dump(capped_rules(yaml.safe_load(RULES.read_text()),
                                                     self.settings.alerting.rule_for_max_s), sort_keys=False))
        exporter = self.settings.prometheus
        config = {
            "global": {"scrape_interval": f"{exporter.scrape_interval_s}s",
                       "evaluation_interval": f"{exporter.scrape_interval_s}s"},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [f"127.0.0.1:{self.settings.alerting.port}"]}]}]},
            "scrape_configs": [
                {"job_name": "flink", "static_configs": [
                    {"targets": flink_metric_targets(self.settings.flink.prometheus_ports)}]},
                {"job_name": "loanrisk", "static_configs": [
                    {"targets": [f"127.0.0.1:{self.settings.prometheus.exporter_port}"]}]},
            ],
        }
        (self.home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self) -> list[str]:
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("prometheus is not installed: apt-get install prometheus (riskctl setup does it)")
        return [binary, f"--config.file={self.home / 'prometheus.yml'}", f"--storage.tsdb.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.settings.prometheus.port}", "--storage.tsdb.retention.time=7d",
                "--web.enable-lifecycle", "--log.level=warn"]

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.prometheus.url}/-/ready")
