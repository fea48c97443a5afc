"""`riskctl warehouse sync|ddl|query`: load the lake into Snowflake exactly once, print the DDL, run analyst SQL."""

from __future__ import annotations

from pathlib import Path

import click

from loanrisk.settings import get_settings


@click.group()
def warehouse() -> None:
    """Snowflake: the exactly-once loader from Iceberg, its DDL and the analyst queries."""


@warehouse.command("sync")
@click.option("--table", "tables", multiple=True, help="Snowflake or lake table name; repeatable (default: all).")
@click.option("--follow", is_flag=True, help="Keep syncing every --interval seconds until interrupted.")
@click.option("--interval", type=float, default=None, help="Seconds between syncs with --follow "
              "(default: snowflake.follow_interval_s).")
@click.option("--batch-rows", type=int, default=None, help="Rows per batch (default: snowflake.batch_rows).")
def sync_cmd(tables: tuple[str, ...], follow: bool, interval: float | None, batch_rows: int | None) -> None:
    """Load the Iceberg snapshots added since the last sync; MERGE by key, control row in the same transaction."""
    from warehouse.loader import follow as follow_loop
    from warehouse.loader import sync
    settings = get_settings()
    if batch_rows is not None:
        settings = settings.model_copy(update={"snowflake": settings.snowflake.model_copy(
            update={"batch_rows": batch_rows})})
    if follow:
        follow_loop(settings, interval, list(tables) or None, click.echo)
        return
    report = sync(settings, list(tables) or None, click.echo)
    click.echo(f"merged {report.rows} rows")


@warehouse.command("ddl")
def ddl_cmd() -> None:
    """Print the Snowflake script: roles and grants (administrator), then the tables (loader)."""
    from warehouse.ddl import schema_script
    click.echo(schema_script(get_settings()), nl=False)


@warehouse.command("query")
@click.argument("sql_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def query_cmd(sql_file: Path) -> None:
    """Run one SQL file (e.g. sql/warehouse/portfolio_risk_by_segment.sql) and print its rows."""
    from warehouse.queries import run_query
    names, rows = run_query(get_settings(), sql_file)
    click.echo("\t".join(names))
    for row in rows:
        click.echo("\t".join("" if v is None else str(v) for v in row))
    click.echo(f"({len(rows)} rows)")
