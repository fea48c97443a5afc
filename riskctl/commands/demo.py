"""`riskctl demo`: submit the risk job, replay Lending Club applications with generated behaviour, show results live.

The replay ends with watermark heartbeats (contracts/heartbeat.py), and a heartbeat round goes out every
few seconds while the table runs: the last risk windows close as soon as the job has caught up.
"""

from __future__ import annotations

import threading
import time

import click

from loanrisk.settings import Settings, get_settings, override
from models.first_champion import ensure_champion

LAKE_TABLES = ("raw_loan_applications", "raw_transactions", "raw_repayments", "dead_letters", "scores")
REFRESH_S = 5.0


def lake_counts(settings: Settings) -> dict[str, int]:
    """Rows committed so far in each lake table the job writes (0 before the first commit)."""
    from loanrisk.lake import committed_rows
    return committed_rows(settings, LAKE_TABLES)


def kafka_counts(settings: Settings) -> dict[str, int]:
    """Messages in each input topic."""
    from stack.services.kafka import topic_offsets
    t = settings.kafka.topics
    return {name: topic_offsets(settings.kafka, name) for name in (t.applications, t.transactions, t.repayments)}


def serving_summary(settings: Settings) -> dict[str, object]:
    """Alerts so far, the latest risk window, and whether scores still wait for a window to close."""
    from loanrisk.serving import serving_connection
    try:
        with serving_connection(settings, reader=True) as conn:
            alerts = conn.execute("SELECT count(*) FROM loan_scores_latest WHERE probability >= %s",
                                  (settings.model.alert_threshold,)).fetchone()[0]
            latest = conn.execute(
                "SELECT window_start, max(window_end), sum(applications), sum(scored_loans), "
                "sum(mean_probability * scored_loans) / nullif(sum(scored_loans), 0), sum(expected_loss_usd) "
                "FROM risk_by_window GROUP BY window_start ORDER BY window_start DESC LIMIT 1").fetchone()
            newest_score = conn.execute("SELECT max(trigger_time) FROM loan_scores_latest").fetchone()[0]
    except Exception:  # noqa: BLE001 - tables not there before the first submit
        return {"alerts": 0, "window": "-"}
    waiting = f"  (scores up to {newest_score:%Y-%m-%d %H:%M} wait for their window)" if newest_score and (
        not latest or newest_score >= latest[1]) else ("  (every score in a closed window)" if newest_score else "")
    if not latest:
        return {"alerts": alerts, "window": f"-{waiting}"}
    start, _, apps, scored, mean_pd, loss = latest
    return {"alerts": alerts, "window": f"{start:%Y-%m-%d %H:%M} apps {apps} scored {scored} "
                                        f"mean PD {float(mean_pd or 0):.3f} EL ${float(loss or 0):,.0f}{waiting}"}


def demo_settings(settings: Settings) -> Settings:
    """The settings with a one-day risk window unless one is configured: replayed history spans months."""
    if "window_minutes" in settings.flink.model_fields_set:
        return settings
    return override(settings, flink={"window_minutes": 1440})


@click.command()
@click.option("--loans", type=int, default=100, show_default=True,
              help="Lending Club loans to replay, each with its whole simulated life (about 200 events a loan).")
@click.option("--rate", type=float, default=4_000, show_default=True, help="Events per second.")
@click.option("--watch", type=float, default=150, show_default=True,
              help="Seconds to keep printing the live summary after producing (Ctrl-C stops earlier).")
def demo(loans: int, rate: float, watch: float) -> None:
    """Run the main job on the local stack and print a live summary of its results."""
    from ingestion.producer import LULL_HEARTBEAT_INTERVAL_S, heartbeats_for, make_producer
    from ingestion.timeutil import iso_ms
    from ingestion.wire import topics_from_settings
    from jobs.params import RISK_JOB_NAME
    from jobs.submit import submit_risk_job
    from riskctl.commands.produce import send_with_progress, source_events
    from stack.flink_client import list_jobs
    settings = demo_settings(get_settings())
    click.echo(f"model: {ensure_champion(settings, say=click.echo)}")
    running = [j for j in list_jobs(settings) if j["name"] == RISK_JOB_NAME and j["state"] == "RUNNING"]
    if running:
        click.echo(f"risk job already running: {running[0]['jid']} (its windows must be the ones configured here: "
                   f"risk {settings.flink.window_minutes} min, behaviour {settings.flink.behaviour_window_days} d)")
    else:
        click.echo("submitting the risk job (flink run) ...")
        click.echo(f"risk job: {submit_risk_job(settings)}  (Flink UI: {settings.flink.rest_url})")
    click.echo(f"replaying {loans} Lending Club loans (applications with generated transactions and repayments, "
               "with anomalies) ...")
    producer = make_producer(kafka=settings.kafka)
    producer.check_connection()
    heartbeats = heartbeats_for(producer, settings)
    events = source_events("lendingclub", 2018, rate or None, None, True, topics_from_settings(settings.kafka.topics),
                           loans)
    summary = send_with_progress(events, producer, "lendingclub -> kafka", heartbeats=heartbeats)
    click.echo(summary.line())
    if summary.failed or summary.pending or summary.heartbeats_undelivered:
        producer.close()
        raise click.ClickException("producing events failed (see above)")
    if summary.last_event_ms is not None:
        click.echo(f"replay ended {time.strftime('%H:%M:%S')}; last event {iso_ms(summary.last_event_ms)}; "
                   f"a heartbeat round every {LULL_HEARTBEAT_INTERVAL_S:g} s from now on, so the last windows "
                   "close once the job has caught up")
    stop = threading.Event()
    beating = heartbeats.keep_sending(stop)
    deadline = time.monotonic() + watch
    click.echo(f"{'time':<9}{'kafka in':>9}{'raw apps':>9}{'raw txns':>9}{'repaymts':>9}{'dead ltr':>9}"
               f"{'scored':>8}{'alerts':>7}  latest risk window")
    try:
        while True:
            # Heartbeats are messages in the topics too, but not events: leave this run's out.
            k = sum(kafka_counts(settings).values()) - heartbeats.sent
            lake = lake_counts(settings)
            serving = serving_summary(settings)
            click.echo(f"{time.strftime('%H:%M:%S'):<9}{k:>9}{lake['raw_loan_applications']:>9}"
                       f"{lake['raw_transactions']:>9}{lake['raw_repayments']:>9}{lake['dead_letters']:>9}"
                       f"{lake['scores']:>8}{serving['alerts']:>7}  {serving['window']}")
            if time.monotonic() > deadline:
                break
            time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        beating.join()
        producer.close()
    click.echo("query it: riskctl sql, or pyiceberg on catalog "
               f"'{settings.catalog.name}' namespace '{settings.catalog.namespace}'")
