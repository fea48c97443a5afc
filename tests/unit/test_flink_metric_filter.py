"""The Flink Prometheus reporter's include filters keep every Flink metric the dashboards and alert rules read."""

from __future__ import annotations

import re

import pytest

from loanrisk.settings import REPO_ROOT, Settings
from stack.flink_conf import PROMETHEUS_INCLUDES, flink_config

# Prometheus name prefix -> Flink logical scope (user groups of an operator follow its scope).
SCOPES = (("flink_jobmanager_job_", "jobmanager.job"), ("flink_jobmanager_", "jobmanager"),
          ("flink_taskmanager_job_task_operator_", "taskmanager.job.task.operator"),
          ("flink_taskmanager_job_task_", "taskmanager.job.task"))


def _wildcard(pattern: str) -> str:
    return ".*".join(re.escape(p) for p in pattern.split("*"))


def included(prom_name: str) -> bool:
    """Whether a filter matches the metric's scope and (its name or a user group path ending in it)."""
    prefix, scope = next((p, s) for p, s in SCOPES if prom_name.startswith(p))
    rest = prom_name[len(prefix):]
    for f in PROMETHEUS_INCLUDES:
        scope_pattern, _, names = f.partition(":")
        if not re.fullmatch(_wildcard(scope_pattern), scope):
            continue
        if not names or any(re.fullmatch(f"(.*_)?{_wildcard(n)}", rest) for n in names.split(":")[0].split(",")):
            return True
    return False


def used_metrics() -> set[str]:
    """Every Flink metric named in the built dashboards and the alert rules."""
    text = "".join(p.read_text() for p in [*(REPO_ROOT / "grafana" / "dashboards").glob("*.json"),
                                            *(REPO_ROOT / "prometheus" / "rules").glob("*.yml")])
    return set(re.findall(r"flink_(?:jobmanager|taskmanager)_[A-Za-z_]+", text))


def test_every_flink_metric_the_dashboards_and_alerts_read_is_exported() -> None:
    used = used_metrics()
    assert len(used) >= 10, used
    assert not [m for m in sorted(used) if not included(m)]


@pytest.mark.setup  # flink_config reads the Flink environment's default config
def test_the_filter_drops_the_bulk_and_the_config_carries_it() -> None:
    for dropped in ("flink_taskmanager_job_task_mailboxLatencyMs", "flink_taskmanager_job_task_operator_numBytesOut",
                    "flink_taskmanager_job_task_operator_currentOutputWatermark"):
        assert not included(dropped), dropped
    conf = flink_config(Settings())
    assert conf["metrics.reporter.prom.filter.includes"] == list(PROMETHEUS_INCLUDES)
