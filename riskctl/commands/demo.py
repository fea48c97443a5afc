"""`riskctl demo`: submit the risk job, replay Lending Club applications with generated behaviour, show results live."""

from __future__ import annotations

import subprocess
import sys
import time

import click

from loanrisk.settings import Settings, get_settings

LAKE_TABLES = ("raw_loan_applications", "raw_transactions", "raw_repayments", "dead_letters")


def lake_counts(settings: Settings) -> dict[str, int]:
    """Rows committed so far in each lake table the job writes (0 before the first commit)."""
    from loanrisk.lake import catalog
    cat = catalog(settings)
    counts = {}
    for name in LAKE_TABLES:
        try:
            tbl = cat.load_table(f"{settings.catalog.namespace}.{name}")
            snap = tbl.current_snapshot()
            counts[name] = int(snap.summary.get("total-records", 0)) if snap and snap.summary else 0
        except Exception:  # noqa: BLE001 - table not created yet
            counts[name] = 0
    return counts


def kafka_counts(settings: Settings) -> dict[str, int]:
    """Messages in each input topic."""
    from stack.services.kafka import topic_offsets
    t = settings.kafka.topics
    return {name: topic_offsets(settings.kafka.bootstrap, name) for name in (t.applications, t.transactions,
                                                                             t.repayments)}


@click.command()
@click.option("--count", type=int, default=20_000, show_default=True, help="Events to replay.")
@click.option("--rate", type=float, default=4_000, show_default=True, help="Events per second.")
@click.option("--watch", type=float, default=60, show_default=True,
              help="Seconds to keep printing the live summary after producing (Ctrl-C stops earlier).")
def demo(count: int, rate: float, watch: float) -> None:
    """Run the main job on the local stack and print a live summary of its results."""
    from riskctl.commands.job import RISK_JOB_NAME, submit_risk_job
    from stack.flink_client import list_jobs
    settings = get_settings()
    running = [j for j in list_jobs(settings) if j["name"] == RISK_JOB_NAME and j["state"] == "RUNNING"]
    if running:
        click.echo(f"risk job already running: {running[0]['jid']}")
    else:
        click.echo("submitting the risk job (flink run) ...")
        click.echo(f"risk job: {submit_risk_job(settings)}  (Flink UI: {settings.flink.rest_url})")
    click.echo(f"replaying {count} Lending Club events (generated transactions and repayments, with anomalies) ...")
    proc = subprocess.run([sys.executable, "-m", "riskctl.main", "produce", "--source", "lendingclub", "--count",
                           str(count), "--rate", str(rate), "--anomalies", "--seed", "2018"])
    if proc.returncode != 0:
        raise click.ClickException("producing events failed (see above)")
    deadline = time.monotonic() + watch
    click.echo(f"{'time':<9}{'kafka in':>10}{'raw apps':>10}{'raw txns':>10}{'raw repay':>10}{'dead letters':>14}")
    try:
        while True:
            k = sum(kafka_counts(settings).values())
            lake = lake_counts(settings)
            click.echo(f"{time.strftime('%H:%M:%S'):<9}{k:>10}{lake['raw_loan_applications']:>10}"
                       f"{lake['raw_transactions']:>10}{lake['raw_repayments']:>10}{lake['dead_letters']:>14}")
            if time.monotonic() > deadline:
                break
            time.sleep(5)
    except KeyboardInterrupt:
        pass
    click.echo("query it: riskctl sql, or pyiceberg on catalog "
               f"'{settings.catalog.name}' namespace '{settings.catalog.namespace}'")
