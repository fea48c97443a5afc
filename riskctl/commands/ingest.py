"""`riskctl ingest plaid|razorpayx`: pull bank transactions from an API into Kafka (or stdout with --dry-run)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TextIO

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingestion.apis import ApiSettings
from ingestion.apis.http import RetryPolicy
from ingestion.apis.mapping import CustomerLookup, customer_lookup
from ingestion.apis.kafka_sink import kafka_sink
from ingestion.apis.runner import Event, IngestReport, Sink, Source, run_ingest
from loanrisk.errors import ConfigError, LoanRiskError

_err = Console(stderr=True, highlight=False)


# -- sinks -----------------------------------------------------------------------------------------
def stdout_sink(stream: TextIO) -> Sink:
    """--dry-run: each event as one JSON line on ``stream``, the same bytes Kafka would get."""
    from ingestion.wire import encode_event

    def sink(events: list[Event]) -> None:
        for event in events:
            stream.write(encode_event(event).decode("utf-8") + "\n")
        stream.flush()
    return sink


# -- shared options --------------------------------------------------------------------------------
def _common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Where cursors live [default: <stack state dir>/ingest]."),
        click.option("--max-pages", type=click.IntRange(min=1), default=None, help="Stop after this many pages."),
        click.option("--dry-run", is_flag=True, help="Print events as JSON lines; produce nothing, keep the cursor."),
        click.option("--customer-id", default=None, help="customer_id for every account of this source."),
        click.option("--customer-map", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
                     help="JSON object {account: customer_id}; accounts missing from it use --customer-id."),
        click.option("--rate", type=click.FloatRange(min=0.01), default=None, help="Max requests per second."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
                     help="Per-request timeout in seconds."),
        click.option("--max-attempts", type=click.IntRange(min=1), default=5, show_default=True,
                     help="Attempts per request (retries on 429/5xx/timeouts)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _customers(customer_id: str | None, customer_map: Path | None) -> CustomerLookup:
    if customer_id is None and customer_map is None:
        raise click.UsageError("give --customer-id and/or --customer-map (which customer owns these accounts)")
    mapping: dict[str, str] = {}
    if customer_map is not None:
        try:
            mapping = json.loads(customer_map.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"cannot read {customer_map}: {exc}", param_hint="--customer-map") from None
        if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in mapping.items()):
            raise click.BadParameter("must be a JSON object of strings {account: customer_id}",
                                     param_hint="--customer-map")
    return customer_lookup(mapping, customer_id)


def _state_dir(state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir
    from loanrisk.settings import get_settings
    return get_settings().state_dir / "ingest"


@contextmanager
def _progress(label: str) -> Iterator[Callable[[IngestReport], None]]:
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                  TextColumn("pages {task.fields[pages]}  events {task.fields[events]}  "
                             "retries {task.fields[retries]}  {task.fields[rate]}"),
                  TimeElapsedColumn(), console=_err, transient=True, redirect_stdout=False,
                  redirect_stderr=False, disable=not _err.is_terminal) as progress:
        task = progress.add_task(label, total=None, pages=0, events=0, retries=0, rate="")

        def update(report: IngestReport) -> None:
            progress.update(task, pages=report.pages, events=report.events, retries=report.retries,
                            rate=f"{report.rate:.0f} ev/s")
        yield update


def _summary(report: IngestReport, dry_run: bool) -> None:
    table = Table(title=f"ingest {report.source}", show_header=False, title_justify="left")
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(report.skipped.items())) or "none"
    mode = "dry run (printed; cursor not advanced)" if dry_run else "produced to Kafka"
    for name, value in (("mode", mode), ("pages", report.pages), ("events", report.events),
                        ("source records", report.source_records), ("skipped", skipped),
                        ("repeats suppressed", report.duplicates), ("requests", report.requests),
                        ("retries", report.retries), ("rate", f"{report.rate:.1f} events/s"),
                        ("elapsed", f"{report.elapsed_s:.1f}s"),
                        ("state", "caught up" if report.caught_up else "more pages remain (run again)")):
        table.add_row(name, str(value))
    _err.print(table)


def _execute(label: str, build: Callable[[ApiSettings, ExitStack], Source], *, state_dir: Path | None,
             max_pages: int | None, dry_run: bool) -> None:
    """Build the source, pick the sink, run with progress; errors become one line and exit code 1."""
    try:
        with ExitStack() as stack:
            source = build(ApiSettings.load(), stack)
            directory = _state_dir(state_dir)
            if dry_run:
                sink = stdout_sink(sys.stdout)
            else:
                sink, close = kafka_sink()
                stack.callback(close)
            with _progress(label) as on_page:
                report = run_ingest(source, sink, directory, max_pages=max_pages, persist=not dry_run,
                                    on_page=on_page)
        _summary(report, dry_run)
    except LoanRiskError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        _err.print("interrupted: the cursor holds only acknowledged events; run again to resume")
        sys.exit(130)


def _retry(max_attempts: int) -> RetryPolicy:
    return RetryPolicy(max_attempts=max_attempts)


# -- commands --------------------------------------------------------------------------------------
@click.group("ingest")
def ingest() -> None:
    """Pull bank transactions from Plaid or RazorpayX into the transactions topic."""


@ingest.command("plaid")
@click.option("--access-token", envvar="PLAID_ACCESS_TOKEN", required=True, show_envvar=True,
              help="The Item's access token (prefer the environment variable: arguments show in ps).")
@click.option("--count", type=click.IntRange(1, 500), default=100, show_default=True,
              help="Updates per /transactions/sync page.")
@_common_options
def plaid_cmd(access_token: str, count: int, state_dir: Path | None, max_pages: int | None, dry_run: bool,
              customer_id: str | None, customer_map: Path | None, rate: float | None, timeout: float,
              max_attempts: int) -> None:
    """Sync one Plaid Item's transactions (PLAID_CLIENT_ID, PLAID_SECRET, PLAID_BASE_URL)."""
    from ingestion.apis.plaid import PlaidClient, PlaidSource

    customers = _customers(customer_id, customer_map)

    def build(settings: ApiSettings, stack: ExitStack) -> Source:
        client = stack.enter_context(PlaidClient.from_settings(
            settings, timeout_s=timeout, retry=_retry(max_attempts), **({"rate_per_s": rate} if rate else {})))
        return PlaidSource(client, access_token, customers, count=count)

    _execute("plaid", build, state_dir=state_dir, max_pages=max_pages, dry_run=dry_run)


@ingest.command("razorpayx")
@click.option("--account-number", default=None, help="Business account [default: $RAZORPAYX_ACCOUNT_NUMBER].")
@click.option("--resource", type=click.Choice(["transactions", "payouts"]), default="transactions",
              show_default=True, help="Account statement (booked, with balance) or processed payouts only.")
@click.option("--since", type=click.IntRange(min=0), default=0, show_default=True,
              help="Unix time the first run starts from (later runs resume from the cursor).")
@click.option("--count", type=click.IntRange(1, 100), default=100, show_default=True, help="Items per page.")
@_common_options
def razorpayx_cmd(account_number: str | None, resource: str, since: int, count: int, state_dir: Path | None,
                  max_pages: int | None, dry_run: bool, customer_id: str | None, customer_map: Path | None,
                  rate: float | None, timeout: float, max_attempts: int) -> None:
    """Read a RazorpayX account's transactions or payouts (RAZORPAYX_KEY_ID, RAZORPAYX_KEY_SECRET, ...)."""
    from ingestion.apis.razorpayx import RazorpayXClient, RazorpayXSource

    customers = _customers(customer_id, customer_map)

    def build(settings: ApiSettings, stack: ExitStack) -> Source:
        account = account_number or settings.razorpayx_account_number
        if not account:
            raise ConfigError("no account: pass --account-number or set RAZORPAYX_ACCOUNT_NUMBER")
        client = stack.enter_context(RazorpayXClient.from_settings(
            settings, timeout_s=timeout, retry=_retry(max_attempts), **({"rate_per_s": rate} if rate else {})))
        return RazorpayXSource(client, account, customers, resource=resource,  # type: ignore[arg-type]
                               count=count, since=since)

    _execute("razorpayx", build, state_dir=state_dir, max_pages=max_pages, dry_run=dry_run)
