"""`riskctl privacy erase --customer ID`: an erasure request carried out on every sink."""

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
