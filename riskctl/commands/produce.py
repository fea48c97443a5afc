"""`riskctl produce`: send synthetic or Lending Club events to Kafka at a set rate, with progress and a summary.

Every run is finite, so it ends with a round of watermark heartbeats (contracts/heartbeat.py) that closes
the windows holding its events; ``--heartbeat-for`` keeps sending rounds while the job catches up.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Iterator

import click

from ingestion.anomalies import NO_ANOMALIES, REALISTIC
from ingestion.producer import (IMPLEMENTATIONS, LULL_HEARTBEAT_INTERVAL_S, DeliveryStats, EventProducer, Heartbeats,
                                NullEventProducer, ProduceSummary, heartbeats_for, make_producer, produce_events)
from ingestion.wire import ProducedEvent, topics_from_settings
from loanrisk.errors import LoanRiskError
from loanrisk.settings import get_settings


def source_events(source: str, seed: int, rate: float | None, speedup: float | None, anomalies: bool,
                  topics: dict[str, str], loans: int | None = None) -> Iterator[ProducedEvent]:
    """The chosen source's paced message stream."""
    mess = REALISTIC if anomalies else NO_ANOMALIES
    if source == "synthetic":
        from ingestion.generator import GeneratorConfig, generate

        return generate(GeneratorConfig(seed=seed, rate=rate, speedup=speedup, anomalies=mess, topics=topics))
    from ingestion.lendingclub import ReplayConfig, replay

    return replay(ReplayConfig(seed=seed, limit=loans, rate=rate, speedup=speedup, anomalies=mess, topics=topics))


def _check(rate: float, count: int | None, duration: float | None, speedup: float | None, source: str,
           loans: int | None = None) -> None:
    """Reject bad argument combinations with one clear line."""
    if loans is not None and source != "lendingclub":
        raise click.UsageError("--loans applies to --source lendingclub only")
    if loans is not None and loans < 1:
        raise click.UsageError("--loans must be at least 1")
    if count is not None and duration is not None:
        raise click.UsageError("use either --count or --duration, not both")
    if count is None and duration is None and source == "synthetic":
        raise click.UsageError("the synthetic source is endless: give --count N or --duration SECONDS")
    if count is not None and count < 1:
        raise click.UsageError("--count must be at least 1")
    if duration is not None and duration <= 0:
        raise click.UsageError("--duration must be more than 0 seconds")
    if rate < 0:
        raise click.UsageError("--rate must be >= 0 events per second (0 = as fast as possible)")
    if speedup is not None and speedup <= 0:
        raise click.UsageError("--speedup must be > 0 (simulated seconds per wall-clock second)")


def send_with_progress(events: Iterable[ProducedEvent], producer: EventProducer, label: str, *,
                       count: int | None = None, duration: float | None = None,
                       heartbeats: Heartbeats | None = None) -> ProduceSummary:
    """:func:`produce_events` with a progress bar (events sent, rate, elapsed) on the terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = count if count is not None else (duration if duration is not None else None)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn() if count else
               TextColumn("{task.fields[sent]:,} sent"), TextColumn("{task.fields[speed]:,.0f} ev/s"),
               TimeElapsedColumn()]
    started = time.monotonic()
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(label, total=total, sent=0, speed=0.0)

        def show(handed: int, stats: DeliveryStats) -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            done = handed if count is not None else (min(elapsed, duration) if duration else None)
            progress.update(task, completed=done, sent=handed, speed=handed / elapsed)

        return produce_events(events, producer, count=count, duration_s=duration, on_progress=show,
                              heartbeats=heartbeats)


def keep_heartbeating(heartbeats: Heartbeats, seconds: float) -> None:
    """Send a heartbeat round every LULL_HEARTBEAT_INTERVAL_S for ``seconds`` (Ctrl-C stops earlier)."""
    stop = threading.Event()
    thread = heartbeats.keep_sending(stop)
    try:
        stop.wait(seconds)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        thread.join()


@click.command("produce")
@click.option("--source", type=click.Choice(["synthetic", "lendingclub"]), default="synthetic", show_default=True,
              help="Synthetic borrowers, or the 10,000 Lending Club loans replayed with simulated behaviour.")
@click.option("--rate", type=float, default=1000.0, show_default=True,
              help="Events per wall-clock second (0 = as fast as possible).")
@click.option("--count", type=int, default=None, help="Stop after this many events.")
@click.option("--loans", type=int, default=None,
              help="Lending Club only: replay the first N loans, each with its whole simulated life "
                   "(the stream is in event-time order, so a bare --count sends months of history first).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--seed", type=int, default=None, help="Seed of the source (same seed = same events). Default: random.")
@click.option("--anomalies/--no-anomalies", default=False, show_default=True,
              help="Add skew, disorder, late events, duplicates and malformed messages (dead-letter path).")
@click.option("--speedup", type=float, default=None,
              help="Pace by event time: simulated seconds per wall second (86400 = one day per second).")
@click.option("--heartbeat/--no-heartbeat", default=True, show_default=True,
              help="End with one watermark heartbeat per partition, so the job closes the windows holding "
                   "the last events (timed from the flink.* window and watermark settings: use the job's).")
@click.option("--heartbeat-for", type=float, default=0.0, show_default=True,
              help=f"Then keep sending a heartbeat round every {LULL_HEARTBEAT_INTERVAL_S:g} s for this many "
                   "seconds: the last windows close once the job has caught up, however far behind it is.")
@click.option("--impl", type=click.Choice(IMPLEMENTATIONS), default="confluent", show_default=True,
              help="Kafka client library.")
@click.option("--dry-run", is_flag=True, help="Generate and pace, but send nothing (no broker needed).")
def produce(source: str, rate: float, count: int | None, duration: float | None, seed: int | None,
            anomalies: bool, speedup: float | None, heartbeat: bool, heartbeat_for: float, impl: str,
            dry_run: bool, loans: int | None) -> None:
    """Produce loan-application, transaction and repayment events to Kafka."""
    _check(rate, count, duration, speedup, source, loans)
    if heartbeat_for < 0:
        raise click.UsageError("--heartbeat-for must be >= 0 seconds")
    if heartbeat_for and not heartbeat:
        raise click.UsageError("--heartbeat-for needs heartbeats: drop --no-heartbeat")
    seed = random.randrange(1, 2**31) if seed is None else seed
    try:
        settings = get_settings()
        producer = NullEventProducer(settings.kafka.max_message_bytes) if dry_run else make_producer(impl)
        producer.check_connection()
        events = source_events(source, seed, rate or None, speedup, anomalies,
                               topics_from_settings(settings.kafka.topics), loans)
        heartbeats = heartbeats_for(producer, settings) if heartbeat else None
        summary = send_with_progress(events, producer, f"{source} -> kafka", count=count, duration=duration,
                                     heartbeats=heartbeats)
        if heartbeats is not None and summary.heartbeat is not None and heartbeat_for:
            click.echo(f"{summary.heartbeat.line()}; a round every {LULL_HEARTBEAT_INTERVAL_S:g} s "
                       f"for {heartbeat_for:g} s ...")
            keep_heartbeating(heartbeats, heartbeat_for)
        producer.close()
    except LoanRiskError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{summary.line()} seed={seed}{' (dry run)' if dry_run else ''}")
    if summary.failed or summary.pending:
        raise click.ClickException(f"{summary.failed + summary.pending} events were not delivered")
    if summary.heartbeats_undelivered:
        raise click.ClickException(f"{summary.heartbeats_undelivered} closing heartbeats were not delivered: the "
                                   "windows holding the last events stay open until later events arrive")
