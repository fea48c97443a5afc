"""One module per local service; ``all_services`` lists them in start order."""

from __future__ import annotations

from loanrisk.settings import Settings
from stack.services.base import Service


def all_services(settings: Settings, with_prefect: bool | None = None,
                 with_api: bool | None = None) -> list[Service]:
    """Every service of the local stack in dependency order (Prefect and the scoring API only when enabled)."""
    from stack.services.alertmanager import Alertmanager
    from stack.services.flink import FlinkCluster
    from stack.services.kafka import KafkaBroker
    from stack.services.lag_exporter import LagExporter
    from stack.services.postgres import Postgres
    from stack.services.prefect import PrefectServer
    from stack.services.prometheus import Prometheus
    from stack.services.s3 import S3Endpoint, S3ReadOnlyEndpoint
    from stack.services.scoring_api import ScoringApi
    from stack.services.snowflake import SnowflakeEndpoint

    services: list[Service] = [Postgres(settings), S3Endpoint(settings), S3ReadOnlyEndpoint(settings),
                               KafkaBroker(settings), SnowflakeEndpoint(settings), FlinkCluster(settings),
                               LagExporter(settings), Alertmanager(settings), Prometheus(settings)]
    if settings.prefect.enabled if with_prefect is None else with_prefect:
        services.append(PrefectServer(settings))
    if settings.api.enabled if with_api is None else with_api:
        services.append(ScoringApi(settings))
    return services
