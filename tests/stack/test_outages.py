"""Outages of every service the job writes to, one after another in one run, each with its own reconciliation.

Default tier. The full tier's fault matrix (tests/stack/test_reliability.py) gives each fault a stream and a
recovery of its own; here the same kinds of fault share one run: for each, a fresh stream is sent while
the fault is injected, the test waits until every task runs again, and goes on to the next. At the end
each fault's stream is reconciled on its own: every event in its raw table once, one application score
per application, one PostgreSQL row per loan, no repeated key in the alert or dead-letter topics, the
dead-letter totals unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from ingestion.wire import ProducedEvent
from tests.stack.conftest import RiskRun
from tests.stack.reliability_helpers import (
    Outgoing, all_tasks_running, assert_exactly_once, exactly_once_report, read_sinks, restarts, send_tracked, valid_stream,
    wait_all_landed, wait_until,
)
from tests.stack.test_reliability import _freeze_for, _savepoint_and_resume, _stop_for

pytestmark = pytest.mark.stack

OUTAGE_S = 15  # longer than the job's checkpoint interval: at least one checkpoint meets the outage
SEND_OVER_S = 30

OUTAGES: dict[str, Callable[[RiskRun], None]] = {
    "kafka broker restart": lambda r: _stop_for(r.settings, "kafka", 5),
    f"postgresql stopped {OUTAGE_S} s": lambda r: _stop_for(r.settings, "postgres", OUTAGE_S),
    f"s3 endpoint stopped {OUTAGE_S} s": lambda r: _stop_for(r.settings, "s3", OUTAGE_S),
    f"s3 endpoint paused {OUTAGE_S} s (SIGSTOP)": lambda r: _freeze_for(r.settings, "s3", OUTAGE_S),
    "stop with savepoint and resume": _savepoint_and_resume,
}


@dataclass
class Outage:
    """One fault of the run: its stream and what recovery took."""

    name: str
    events: list[ProducedEvent]
    figures: dict[str, float] = field(default_factory=dict)


def _inject(risk_run: RiskRun, outage: Outage) -> None:
    """Send the outage's stream while the fault happens; return once every task runs again."""
    s = risk_run.settings
    msgs = [Outgoing(e.topic, e.key, e.value_bytes, "valid", e.event_id) for e in outage.events]
    sent: list = []
    sender = threading.Thread(target=lambda: sent.append(send_tracked(s, msgs, pace_per_s=len(msgs) / SEND_OVER_S)))
    sender.start()
    time.sleep(5)
    started = time.monotonic()
    OUTAGES[outage.name](risk_run)
    outage.figures["healed_s"] = time.monotonic() - started
    outage.figures["running_s"] = wait_until(lambda: all_tasks_running(s, risk_run.job_id), 600,
                                             f"every task RUNNING again after {outage.name}", s, risk_run.job_id, 1)
    sender.join(600)
    assert sent, f"the producer did not finish during {outage.name}"


def test_broker_postgres_and_object_store_outages_and_a_savepoint_resume_lose_and_double_nothing(
        risk_run: RiskRun) -> None:
    s = risk_run.settings
    outages = [Outage(name, valid_stream(seed=8800 + n, customers=10, start=f"2021-{1 + n:02d}-01T00:00:00Z"))
               for n, name in enumerate(OUTAGES)]
    before = exactly_once_report(s, [])
    restarts_before = restarts(s, risk_run.job_id)
    for outage in outages:
        _inject(risk_run, outage)
    every_event = [e for o in outages for e in o.events]
    landed_s = wait_all_landed(s, risk_run.job_id, every_event, 900, "every event sent during the outages landed")
    time.sleep(15)  # two more checkpoints: a doubled row would be committed by now
    sinks = read_sinks(s)
    for outage in outages:
        report = exactly_once_report(s, outage.events, sinks)
        print(f"\noutage '{outage.name}': {len(outage.events)} events; healed in {outage.figures['healed_s']:.0f}s, "
              f"tasks RUNNING {outage.figures['running_s']:.0f}s later")
        print("  exactly-once report:", report)
        assert_exactly_once(before, report, outage.name)
    print(f"every outage's events landed {landed_s:.0f}s after the last one; failovers {restarts_before} -> "
          f"{restarts(s, risk_run.job_id)} (the resumed job counts its own)")
    assert all_tasks_running(s, risk_run.job_id)
