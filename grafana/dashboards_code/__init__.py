"""The dashboards, one module each; ``DASHBOARDS`` maps the output file name to its builder function."""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.models.dashboard import Dashboard

from grafana.dashboards_code import loan_risk_live, pipeline_health

DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "loan-risk-live.json": loan_risk_live.build,
    "pipeline-health.json": pipeline_health.build,
}
