"""`riskctl flows deploy|serve|run NAME|status`: the Prefect deployments of prefect_flows/ from the shell."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from loanrisk.errors import ConfigError

_out = Console(highlight=False, markup=False)


def _connect() -> str:
    """Point Prefect at settings.prefect.url; a one-line error when the server does not answer."""
    from prefect_flows.client import configure, server_reachable

    url = configure()
    if not server_reachable():
        raise ConfigError(f"no Prefect server answers at {url}: start it (riskctl stack up --with-prefect) or set "
                          "LOANRISK_PREFECT__API_URL")
    return url


@click.group("flows")
def flows() -> None:
    """Prefect flows: retrain (every 6 h), ingest_apis, load_warehouse, data_quality, report, maintain_lake,
    expire_snapshots, compact_lake."""


@flows.command("deploy")
@click.argument("names", nargs=-1)
def deploy_cmd(names: tuple[str, ...]) -> None:
    """Register the deployments and their schedules on the Prefect server (all, or NAMES)."""
    from prefect_flows.deployments import deploy

    url = _connect()
    for full in deploy(list(names) or None):
        _out.print(f"deployed {full}")
    _out.print(f"Prefect UI: {url.removesuffix('/api')}  (runs execute where `riskctl flows serve` runs)")


@flows.command("serve")
@click.argument("names", nargs=-1)
def serve_cmd(names: tuple[str, ...]) -> None:
    """Serve the deployments in the foreground (schedules fire, triggered runs execute); Ctrl-C stops."""
    from prefect_flows.deployments import serve

    _connect()
    serve(list(names) or None)


@flows.command("run")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="KEY=JSON", help="A flow parameter, value as JSON.")
@click.option("--timeout", default=3600, show_default=True, type=click.IntRange(1), help="Seconds to wait.")
def run_cmd(name: str, params: tuple[str, ...], timeout: int) -> None:
    """Trigger deployment NAME (e.g. retrain) and wait; prints the final state. Needs `flows serve` running."""
    from prefect.deployments import run_deployment

    from prefect_flows.deployments import spec

    _connect()
    parameters: dict[str, Any] = {}
    for p in params:
        key, sep, raw = p.partition("=")
        if not sep:
            raise click.BadParameter(f"{p!r}: expected KEY=JSON", param_hint="--param")
        try:
            parameters[key] = json.loads(raw)
        except json.JSONDecodeError:
            parameters[key] = raw
    run = run_deployment(spec(name).full_name, parameters=parameters, timeout=timeout)
    state = run.state
    _out.print(f"{run.name} ({run.id}): {state.name if state else 'unknown'}"
               + (f": {state.message}" if state and state.message else ""))
    if state is None or not state.is_completed():
        raise SystemExit(1)


@flows.command("status")
@click.option("--runs", default=10, show_default=True, type=click.IntRange(0, 100), help="Recent runs to list.")
def status_cmd(runs: int) -> None:
    """Deployments with their schedules, then the most recent flow runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    url = _connect()
    with get_client(sync_client=True) as client:
        deps = client.read_deployments()
        flows_by_id = {f.id: f.name for f in client.read_flows()}
        recent = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=runs) if runs else []
    table = Table(title=f"deployments on {url}")
    for col in ("deployment", "schedule", "paused"):
        table.add_column(col)
    for d in sorted(deps, key=lambda d: d.name):
        sched = ", ".join(_schedule_text(s.schedule) for s in (d.schedules or [])) or "-"
        table.add_row(f"{flows_by_id.get(d.flow_id, '?')}/{d.name}", sched, str(bool(d.paused)))
    _out.print(table)
    if runs:
        rt = Table(title="recent flow runs")
        for col in ("flow", "run", "state", "started", "message"):
            rt.add_column(col)
        for r in recent:
            rt.add_row(flows_by_id.get(r.flow_id, "?"), r.name, r.state_name or "-",
                       str(r.start_time or "-")[:19], ((r.state.message if r.state else "") or "")[:80])
        _out.print(rt)


def _schedule_text(schedule: Any) -> str:
    """A schedule object in words."""
    if getattr(schedule, "cron", None):
        return f"cron {schedule.cron} {schedule.timezone or 'UTC'}"
    if getattr(schedule, "interval", None):
        return f"every {int(schedule.interval.total_seconds() // 60)} min"
    return str(schedule)
