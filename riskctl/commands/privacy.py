"""`riskctl privacy erase --customer ID`: an erasure request carried out on every sink; `riskctl privacy replay`:
erasures applied again while a source can still bring the rows back."""

from __future__ import annotations

import click

from loanrisk.settings import get_settings


@click.group()
def privacy() -> None:
    """Personal-data requests (erasure)."""


@privacy.command("erase")
@click.option("--customer", "customer_id", required=True, help="The customer_id whose rows are removed.")
@click.option("--warehouse/--no-warehouse", default=True, show_default=True,
              help="Also delete from Snowflake tables that have a CUSTOMER_ID column.")
@click.option("--dry-run", is_flag=True, help="Count the customer's rows in every table; change nothing.")
def privacy_erase(customer_id: str, warehouse: bool, dry_run: bool) -> None:
    """Remove CUSTOMER's rows from the lake (dead letters included), PostgreSQL and Snowflake."""
    from erasure.customer import ErasureError, erase_customer
    report = erase_customer(get_settings(), customer_id, warehouse=warehouse, dry_run=dry_run)
    for line in report.lines():
        click.echo(line)
    total = sum(report.removed.values())
    if dry_run:
        if report.failed:
            raise ErasureError(f"could not count {customer_id}'s rows in: {', '.join(sorted(report.failed))}")
        click.echo(f"dry run for {customer_id}: {total} row(s) would be removed; nothing changed")
        return
    if report.failed:
        raise ErasureError(f"erasure of {customer_id} incomplete: {', '.join(sorted(report.failed))} failed "
                           f"({total} row(s) removed elsewhere); run the command again once they are reachable")
    click.echo(f"erased {customer_id}: {total} row(s) removed")


@privacy.command("replay")
@click.option("--warehouse/--no-warehouse", default=True, show_default=True)
@click.option("--dry-run", is_flag=True, help="Count the rows that came back; change nothing.")
def privacy_replay(warehouse: bool, dry_run: bool) -> None:
    """Apply again every erasure a source could still undo (after `riskctl job resume` from an earlier checkpoint,
    or a replay of history): rows a source brought back are removed again; the others are forgotten."""
    from erasure.customer import ErasureError, replay_erasures
    replay = replay_erasures(get_settings(), warehouse=warehouse, dry_run=dry_run)
    if not replay.restore_points_known:
        click.echo("the job's checkpoints and savepoints could not be listed: erasures within "
                   "flink.restore_point_retention_days are applied again")
    for report in replay.reports:
        back = sum(report.removed.values())
        click.echo(f"{report.customer_id}: {back} row(s) {'would be removed' if dry_run else 'removed'} again")
        for line in report.lines() if back or report.failed else []:
            click.echo(f"  {line}")
    failed = [r.customer_id for r in replay.reports if r.failed]
    if failed:
        raise ErasureError(f"replay incomplete for {', '.join(failed)}; run it again once every sink is reachable")
    click.echo(f"{len(replay.reports)} erasure(s) that a source could still undo applied again"
               + (" (dry run)" if dry_run else f"; {replay.forgotten} past that forgotten from the ledger"))
