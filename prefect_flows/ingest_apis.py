"""ingest_apis: Plaid and RazorpayX pulls into the transactions topic; cursors persist between runs.

Credentials come from the environment as for `riskctl ingest` (PLAID_CLIENT_ID, PLAID_SECRET,
PLAID_ACCESS_TOKEN, RAZORPAYX_KEY_ID, RAZORPAYX_KEY_SECRET, RAZORPAYX_ACCOUNT_NUMBER, *_BASE_URL);
a source without credentials is skipped with a log line, so the schedule is harmless before setup.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from prefect_flows.options import TASK_DEFAULTS, flow_options, with_policy

SOURCES = ("plaid", "razorpayx")


def _configured(source: str, env: dict[str, str]) -> list[str]:
    """Environment variables ``source`` needs that are unset."""
    need = {"plaid": ("PLAID_CLIENT_ID", "PLAID_SECRET", "PLAID_ACCESS_TOKEN"),
            "razorpayx": ("RAZORPAYX_KEY_ID", "RAZORPAYX_KEY_SECRET", "RAZORPAYX_ACCOUNT_NUMBER")}[source]
    return [v for v in need if not env.get(v)]


@task(name="pull-api", task_run_name="pull-{source}", cache_policy=NO_CACHE, **TASK_DEFAULTS)
def pull(source: str, customer_id: str, max_pages: int | None, max_attempts: int) -> str:
    """Deliver new pages of ``source`` to Kafka from its saved cursor; returns the run's summary line."""
    from contextlib import ExitStack

    from ingestion.apis import ApiSettings
    from ingestion.apis.http import RetryPolicy
    from ingestion.apis.mapping import customer_lookup
    from ingestion.apis.kafka_sink import kafka_sink
    from ingestion.apis.runner import run_ingest
    from loanrisk.settings import get_settings

    log = get_run_logger()
    missing = _configured(source, dict(os.environ))
    if missing:
        log.info("%s skipped: set %s to pull it", source, ", ".join(missing))
        return f"{source}: skipped (not configured)"
    settings, customers = ApiSettings.load(), customer_lookup({}, customer_id)
    with ExitStack() as stack:
        if source == "plaid":
            from ingestion.apis.plaid import PlaidClient, PlaidSource
            client: Any = stack.enter_context(PlaidClient.from_settings(settings,
                                                                   retry=RetryPolicy(max_attempts=max_attempts)))
            api: Any = PlaidSource(client, os.environ["PLAID_ACCESS_TOKEN"], customers)
        else:
            from ingestion.apis.razorpayx import RazorpayXClient, RazorpayXSource
            client = stack.enter_context(RazorpayXClient.from_settings(settings,
                                                                       retry=RetryPolicy(max_attempts=max_attempts)))
            api = RazorpayXSource(client, os.environ["RAZORPAYX_ACCOUNT_NUMBER"], customers)
        sink, close = kafka_sink()
        stack.callback(close)
        report = run_ingest(api, sink, get_settings().state_dir / "ingest", max_pages=max_pages)
    log.info(report.summary())
    return report.summary()


@flow(**flow_options("ingest_apis", "Pull Plaid and RazorpayX transactions into Kafka from saved cursors."))
def ingest_apis(sources: list[str] | None = None, customer_id: str = "api-customer", max_pages: int | None = None,
                max_attempts: int = 5) -> list[str]:
    """Pull every configured source in turn."""
    chosen = list(sources or SOURCES)
    bad = [s for s in chosen if s not in SOURCES]
    if bad:
        raise ValueError(f"unknown source {', '.join(bad)}; choose from {', '.join(SOURCES)}")
    return [with_policy(pull)(s, customer_id, max_pages, max_attempts) for s in chosen]
