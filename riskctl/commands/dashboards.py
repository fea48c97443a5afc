"""`riskctl dashboards build|publish|render`: Grafana dashboards as code."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from loanrisk.settings import REPO_ROOT, get_settings


@click.group("dashboards")
def dashboards() -> None:
    """Generate, publish and render the Grafana dashboards (grafana/)."""


@dashboards.command("build")
@click.option("--check", is_flag=True, help="Only check that grafana/dashboards/*.json is up to date (exit 1 if not).")
def build_cmd(check: bool) -> None:
    """Regenerate grafana/dashboards/*.json from grafana/dashboards_code/ for the settings (alert threshold)."""
    from grafana.build import stale_files, write
    settings = get_settings()
    if check:
        stale = stale_files(settings)
        if stale:
            raise click.ClickException(f"stale dashboard JSON: {', '.join(stale)}; run `riskctl dashboards build`")
        click.echo("dashboards up to date")
        return
    for path in write(settings):
        click.echo(f"wrote {path.relative_to(REPO_ROOT)}")


@dashboards.command("publish")
@click.option("--url", help="Grafana base URL (default: settings grafana.url).")
@click.option("--postgres-url", help="host:port of PostgreSQL as this Grafana reaches it (default: provisioning).")
@click.option("--prometheus-url", help="Prometheus URL as this Grafana reaches it (default: provisioning).")
def publish_cmd(url: str | None, postgres_url: str | None, prometheus_url: str | None) -> None:
    """Push the datasources and dashboards to a real Grafana (token: GRAFANA_TOKEN or grafana.token)."""
    from grafana.panels import POSTGRES_UID, PROMETHEUS_UID
    from grafana.publish import publish
    settings = get_settings()
    url = url or settings.grafana.url
    if not url:
        raise click.ClickException("no Grafana URL: pass --url or set LOANRISK_GRAFANA__URL")
    token = settings.grafana.api_token()
    if not token:
        raise click.ClickException("no Grafana token: set GRAFANA_TOKEN (a service-account token with Editor rights)")
    overrides = {k: v for k, v in ((POSTGRES_UID, postgres_url), (PROMETHEUS_UID, prometheus_url)) if v}
    for line in publish(settings, url, token, settings.grafana.folder, overrides):
        click.echo(line)


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@dashboards.command("render")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=REPO_ROOT / "docs" / "img",
              show_default=True, help="Folder for the PNGs.")
@click.option("--from", "start", help="Start of the SQL panels' range (ISO time; default: covers the data).")
@click.option("--to", "end", help="End of the SQL panels' range (ISO time).")
@click.option("--prom-minutes", default=30, show_default=True, help="Minutes of Prometheus history to draw.")
@click.option("--panels", is_flag=True, help="Also write one PNG per panel.")
def render_cmd(out_dir: Path, start: str | None, end: str | None, prom_minutes: int, panels: bool) -> None:
    """Run every panel's query against the stack and draw the dashboards to PNG (no Grafana needed)."""
    from grafana.render import render
    for path in render(get_settings(), out_dir, _when(start), _when(end), prom_minutes, panels):
        click.echo(f"wrote {path}")
