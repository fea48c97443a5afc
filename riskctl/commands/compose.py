"""`riskctl compose init|lag-exporter`: what the platform containers of docker-compose.yml run
(docker/platform.Dockerfile) where `riskctl stack up` does the same inside its own process."""

from __future__ import annotations

import click

from loanrisk.settings import get_settings


@click.group()
def compose() -> None:
    """Steps of the docker-compose stack that run in the platform image (docker-compose.yml)."""


@compose.command("init")
def compose_init() -> None:
    """Create the platform's topics (with their configuration), the lake's bucket and the serving tables.

    Idempotent, as `riskctl stack up` is: existing topics get the configuration again, an existing bucket and
    existing tables are kept. The broker has topic auto-creation off, so nothing can produce before this ran.
    """
    from loanrisk.serving import ensure_serving_tables
    from stack.services.kafka import ensure_topics, grant_sasl_access
    from stack.services.s3 import S3Endpoint
    settings = get_settings()
    k = settings.kafka
    ensure_topics(k, k.topics.all(), k.topics.partitions, k.topics.topic_config(k.max_message_bytes))
    click.echo(f"topics {', '.join(k.topics.all())} ({k.topics.partitions} partitions each) on {k.admin_bootstrap}")
    if k.sasl:
        grant_sasl_access(k)
        click.echo(f"SCRAM users {k.sasl_user} and {k.analyst_username} with their ACLs")
    S3Endpoint(settings).after_start()
    click.echo(f"bucket {settings.s3.bucket} on {settings.s3.url}")
    ensure_serving_tables(settings)
    click.echo(f"serving tables in {settings.postgres.serving_db} on {settings.postgres.host}:{settings.postgres.port}")


@compose.command("lag-exporter")
@click.option("--host", default="0.0.0.0", show_default=True,
              help="Listen address: every interface of the container, so Prometheus in another container can scrape it "
                   "(docker-compose.yml publishes the port on 127.0.0.1 only).")
def compose_lag_exporter(host: str) -> None:
    """Serve the pipeline exporter (stack/lag_exporter.py) on HOST:<prometheus.port + 1> until SIGTERM."""
    from stack.lag_exporter import serve
    serve(get_settings(), host)
