"""The dashboards, one module each; ``DASHBOARDS`` maps the output file name to its builder function, which
builds the dashboard for the given settings (the alert threshold colours the risk panels)."""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.models.dashboard import Dashboard

from grafana.dashboards_code import loan_risk_live, pipeline_health
from loanrisk.settings import Settings

DASHBOARDS: dict[str, Callable[[Settings], Dashboard]] = {
    "loan-risk-live.json": loan_risk_live.build,
    "pipeline-health.json": pipeline_health.build,
}
