"""`riskctl serve` (the synchronous scoring API) and `riskctl api-key create|list|revoke` (its clients' keys)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

from loanrisk.settings import get_settings, override

if TYPE_CHECKING:
    from scoring_api.store import PostgresStore


@click.command()
@click.option("--host", default=None, help="Listen address (default: api.host, loopback).")
@click.option("--port", type=int, default=None, help="Listen port (default: api.port).")
@click.option("--write-openapi", "openapi_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the OpenAPI document to PATH and exit (docs/openapi.json is the committed one).")
def serve(host: str | None, port: int | None, openapi_path: Path | None) -> None:
    """Serve the scoring API: POST /v1/score and /v1/score:batch with the stream's champion (docs/API.md)."""
    settings = get_settings()
    changes = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if changes:
        settings = override(settings, api=changes)
    if openapi_path is not None:
        from scoring_api.server import write_openapi
        click.echo(f"wrote {write_openapi(settings, openapi_path)}")
        return
    from scoring_api.server import run
    run(settings)


def _store() -> PostgresStore:
    from scoring_api.store import PostgresStore
    settings = get_settings()
    return PostgresStore(settings.postgres, settings.api)


def _utc(t: datetime | None) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if t is not None else "-"


@click.group("api-key")
def api_key() -> None:
    """Scoring API keys: one per client, stored only as a salted hash in the serving database."""


@api_key.command("create")
@click.argument("client")
def api_key_create(client: str) -> None:
    """Make CLIENT's API key and print it: this is the only time it is shown."""
    from scoring_api.keys import create_client_key
    key = create_client_key(_store(), client)
    click.echo(key)
    click.echo(f"API key of {client} (shown once, stored hashed): send it as 'Authorization: Bearer <key>'", err=True)


@api_key.command("list")
def api_key_list() -> None:
    """Every client with its key id, creation and revocation time (never the keys)."""
    keys = _store().keys()
    if not keys:
        click.echo("no API keys (riskctl api-key create CLIENT)")
        return
    click.echo(f"{'client':<24} {'key id':<14} {'created (UTC)':<20} revoked (UTC)")
    for k in keys:
        click.echo(f"{k.client:<24} {k.key_id:<14} {_utc(k.created_at):<20} {_utc(k.revoked_at)}")


@api_key.command("revoke")
@click.argument("client")
def api_key_revoke(client: str) -> None:
    """Revoke CLIENT's key: its requests get 401 within api.key_cache_s."""
    from scoring_api.keys import revoke_client_key
    revoke_client_key(_store(), client)
    click.echo(f"revoked the API key of {client}")
