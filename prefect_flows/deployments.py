"""Every deployment with its schedule (UTC); `riskctl flows deploy|serve` register and run them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeploymentSpec:
    """A flow (module, function), its deployment name and its schedule: a cron line or an interval."""

    flow: str
    cron: str | None = None
    interval_s: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def name(self) -> str:
        """Deployment name (the same as the flow's): runs are addressed as ``flow/deployment``."""
        return self.flow

    @property
    def full_name(self) -> str:
        """``flow/deployment`` as `prefect deployment run` and run_deployment take it."""
        return f"{self.flow}/{self.name}"

    def schedule_text(self) -> str:
        """The schedule in words for `riskctl flows status`."""
        return f"cron {self.cron} UTC" if self.cron else f"every {(self.interval_s or 0) // 60} min"


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec("retrain", cron="0 */6 * * *", description="retrain from Iceberg, promote if better"),
    DeploymentSpec("ingest_apis", interval_s=15 * 60, description="Plaid and RazorpayX into Kafka"),
    DeploymentSpec("load_warehouse", interval_s=10 * 60, description="lake to Snowflake"),
    DeploymentSpec("data_quality", cron="0 * * * *", description="checks on raw, feature and score tables"),
    DeploymentSpec("report", cron="0 6 * * *", description="daily risk report"),
    DeploymentSpec("maintain_lake", cron="0 3 * * *", description="compaction, snapshot expiry, orphans"),
    # Between the daily runs above: every checkpoint's commit rewrites the metadata listing every snapshot kept.
    DeploymentSpec("expire_snapshots", cron="30 * * * *", description="Iceberg snapshot expiry, hourly"),
    # The job adds a file per writer and partition at every checkpoint: the live day's would wait for the night.
    DeploymentSpec("compact_lake", cron="15 * * * *", description="Iceberg compaction of small files, hourly"),
)


def spec(name: str) -> DeploymentSpec:
    """The deployment called ``name`` (flow name or flow/deployment)."""
    flow_name = name.split("/", 1)[0]
    for d in DEPLOYMENTS:
        if d.flow == flow_name:
            return d
    from loanrisk.errors import ConfigError
    raise ConfigError(f"no deployment {name!r}; known: {', '.join(d.flow for d in DEPLOYMENTS)}")


def load_flow(name: str) -> Any:
    """The flow object of module ``prefect_flows.<name>``."""
    return getattr(importlib.import_module(f"prefect_flows.{name}"), name)


def runner_deployment(d: DeploymentSpec) -> Any:
    """A Prefect RunnerDeployment of ``d`` with its schedule in UTC."""
    from datetime import timedelta

    from prefect.schedules import Cron, Interval

    schedule = Cron(d.cron, timezone="UTC") if d.cron else Interval(timedelta(seconds=d.interval_s or 3600),
                                                                     timezone="UTC")
    return load_flow(d.flow).to_deployment(name=d.name, schedules=[schedule], parameters=dict(d.parameters),
                                           description=d.description, tags=["loanrisk"])


def deploy(names: list[str] | None = None) -> list[str]:
    """Register the deployments (with schedules) on the Prefect server; `serve` runs them."""
    chosen = [spec(n) for n in names] if names else list(DEPLOYMENTS)
    for d in chosen:
        runner_deployment(d).apply()
    return [d.full_name for d in chosen]


def serve(names: list[str] | None = None) -> None:
    """Serve the deployments in the foreground: schedules fire and triggered runs execute here."""
    from prefect import serve as prefect_serve

    from loanrisk.logs import setup_logging
    setup_logging()  # after prefect's import, which puts its own console handler on the root logger
    chosen = [spec(n) for n in names] if names else list(DEPLOYMENTS)
    prefect_serve(*[runner_deployment(d) for d in chosen], print_starting_message=True)


if __name__ == "__main__":  # `python -m prefect_flows.deployments`: what `riskctl flows serve` runs
    from prefect_flows.client import configure
    configure()
    serve()
