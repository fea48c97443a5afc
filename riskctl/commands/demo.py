"""`riskctl demo`: submit the risk job, replay Lending Club applications with generated behaviour, show results live."""

from __future__ import annotations

import subprocess
import sys
import time

import click

from loanrisk.settings import Settings, get_settings

LAKE_TABLES = ("raw_loan_applications", "raw_transactions", "raw_repayments", "dead_letters", "scores")


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


def serving_summary(settings: Settings) -> dict[str, object]:
    """Alerts so far and the latest risk window, from the PostgreSQL serving tables."""
    from loanrisk.serving import serving_connection
    try:
        with serving_connection(settings, reader=True) as conn:
            alerts = conn.execute("SELECT count(*) FROM loan_scores_latest WHERE probability >= %s",
                                  (settings.model.alert_threshold,)).fetchone()[0]
            latest = conn.execute(
                "SELECT window_start, sum(applications), sum(scored_loans), "
                "sum(mean_probability * scored_loans) / nullif(sum(scored_loans), 0), sum(expected_loss_usd) "
                "FROM risk_by_window GROUP BY window_start ORDER BY window_start DESC LIMIT 1").fetchone()
    except Exception:  # noqa: BLE001 - tables not there before the first submit
        return {"alerts": 0, "window": "-"}
    if not latest:
        return {"alerts": alerts, "window": "-"}
    start, apps, scored, mean_pd, loss = latest
    return {"alerts": alerts, "window": f"{start:%Y-%m-%d %H:%M} apps {apps} scored {scored} "
                                        f"mean PD {float(mean_pd or 0):.3f} EL ${float(loss or 0):,.0f}"}


def ensure_champion(settings: Settings) -> str:
    """The champion's version; trains and promotes one on generated loans when the registry is empty."""
    from models.registry import Registry
    registry = Registry.from_settings(settings.model.registry(settings.s3))
    champion = registry.champion()
    if champion:
        return str(champion["version"])
    click.echo("no champion model yet: training logistic regression on generated loans ...")
    from models.synthetic import train_on_generated
    result = train_on_generated(customers=1500, seed=7, families=["logistic_regression"], budget=2)
    version = result["candidate"].register(registry)
    registry.promote(version, force=True)
    click.echo(f"champion {version} (holdout ROC AUC {result['roc_auc']:.3f})")
    return version


@click.command()
@click.option("--loans", type=int, default=100, show_default=True,
              help="Lending Club loans to replay, each with its whole simulated life (about 200 events a loan).")
@click.option("--rate", type=float, default=4_000, show_default=True, help="Events per second.")
@click.option("--watch", type=float, default=150, show_default=True,
              help="Seconds to keep printing the live summary after producing (Ctrl-C stops earlier).")
def demo(loans: int, rate: float, watch: float) -> None:
    """Run the main job on the local stack and print a live summary of its results."""
    import os

    from riskctl.commands.job import RISK_JOB_NAME, submit_risk_job
    from stack.flink_client import list_jobs
    # Replayed history spans months of event time: a one-day risk window unless configured otherwise.
    os.environ.setdefault("LOANRISK_FLINK__WINDOW_MINUTES", "1440")
    get_settings.cache_clear()
    settings = get_settings()
    click.echo(f"model: {ensure_champion(settings)}")
    running = [j for j in list_jobs(settings) if j["name"] == RISK_JOB_NAME and j["state"] == "RUNNING"]
    if running:
        click.echo(f"risk job already running: {running[0]['jid']}")
    else:
        click.echo("submitting the risk job (flink run) ...")
        click.echo(f"risk job: {submit_risk_job(settings)}  (Flink UI: {settings.flink.rest_url})")
    click.echo(f"replaying {loans} Lending Club loans (applications with generated transactions and repayments, "
               "with anomalies) ...")
    proc = subprocess.run([sys.executable, "-m", "riskctl.main", "produce", "--source", "lendingclub", "--loans",
                           str(loans), "--rate", str(rate), "--anomalies", "--seed", "2018"])
    if proc.returncode != 0:
        raise click.ClickException("producing events failed (see above)")
    deadline = time.monotonic() + watch
    click.echo(f"{'time':<9}{'kafka in':>9}{'raw apps':>9}{'raw txns':>9}{'repaymts':>9}{'dead ltr':>9}"
               f"{'scored':>8}{'alerts':>7}  latest risk window")
    try:
        while True:
            k = sum(kafka_counts(settings).values())
            lake = lake_counts(settings)
            serving = serving_summary(settings)
            click.echo(f"{time.strftime('%H:%M:%S'):<9}{k:>9}{lake['raw_loan_applications']:>9}"
                       f"{lake['raw_transactions']:>9}{lake['raw_repayments']:>9}{lake['dead_letters']:>9}"
                       f"{lake['scores']:>8}{serving['alerts']:>7}  {serving['window']}")
            if time.monotonic() > deadline:
                break
            time.sleep(5)
    except KeyboardInterrupt:
        pass
    click.echo("query it: riskctl sql, or pyiceberg on catalog "
               f"'{settings.catalog.name}' namespace '{settings.catalog.namespace}'")
