"""Outages of every service the job writes to, one after another in one run, each with its own reconciliation.

Default tier. The full tier's fault matrix (tests/stack/test_reliability.py) gives each fault a stream and a
recovery of its own; here the same kinds of fault share one run: for each, a fresh stream is sent while
the fault is injected, the test waits until every task runs again, and goes on to the next. The first
is the PII key rotation of docs/SECURITY.md: stop with a savepoint, a new key and key id, resume. At the end
each fault's stream is reconciled on its own: every event in its raw table once, one application score
per application, one PostgreSQL row per loan, no repeated key in the alert or dead-letter topics, the
dead-letter totals unchanged.

The scoring API runs beside the job through every fault. While PostgreSQL (its serving store) is down,
it must say so on /readyz and answer /v1/score with 503, never a score computed without the behaviour
features, while an application-only request is scored and says so; once PostgreSQL is back it is ready
again without a restart.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from ingestion.wire import ProducedEvent
from loanrisk.settings import Settings
from tests.stack.conftest import RiskRun
from stack.flink_client import all_tasks_running
from tests.stack.reliability_helpers import (
    Outgoing, assert_exactly_once, exactly_once_report, lake, read_sinks, restarts, send_tracked, valid_stream,
    two_more_checkpoints, wait_all_landed, wait_until,
)
from tests.stack.test_reliability import _freeze_for, _pseudonym, _savepoint_and_resume, _stop_for
from tests.stack.test_scoring_api import Api, _new_application, _served, _settings

pytestmark = pytest.mark.stack

OUTAGE_S = 15  # longer than the job's checkpoint interval: at least one checkpoint meets the outage
LEAD_S = 5  # the stream runs this long before the fault
SEND_OVER_S = LEAD_S + OUTAGE_S  # so events are sent until a fault of OUTAGE_S ends

ROTATED_KEY_ID = "k2"


def _rotate_the_pii_key_through_a_savepoint(risk_run: RiskRun) -> None:
    """The key rotation of docs/SECURITY.md: stop with a savepoint, a new HMAC key and key id, resume from the
    savepoint (the key is read from a file named by a job parameter, so the plan and its state are unchanged).
    The session goes on with the rotated settings."""
    import secrets

    from loanrisk.files import write_private
    s = risk_run.settings
    key_file = write_private(s.state_dir / "secrets" / f"pii-hash-key-{ROTATED_KEY_ID}", secrets.token_hex(32))
    rotated = s.model_copy(update={"privacy": s.privacy.model_copy(update={
        "pii_hash_key": None, "pii_hash_key_file": key_file, "pii_key_id": ROTATED_KEY_ID})})
    risk_run.settings = _savepoint_and_resume(risk_run, rotated)
    print(f"PII key now {ROTATED_KEY_ID}")


# The resume comes first: the resumed job's catch-up then overlaps the next fault instead of the final wait.
OUTAGES: dict[str, Callable[[RiskRun], None]] = {
    "stop with savepoint, rotate the PII key, resume": _rotate_the_pii_key_through_a_savepoint,
    "kafka broker restart": lambda r: _stop_for(r.settings, "kafka", 5),
    f"postgresql stopped {OUTAGE_S} s": lambda r: _stop_for(r.settings, "postgres", OUTAGE_S),
    f"s3 endpoint stopped {OUTAGE_S} s": lambda r: _stop_for(r.settings, "s3", OUTAGE_S),
    f"s3 endpoint paused {OUTAGE_S} s (SIGSTOP)": lambda r: _freeze_for(r.settings, "s3", OUTAGE_S),
}


@dataclass
class Outage:
    """One fault of the run: its stream and what recovery took."""

    name: str
    events: list[ProducedEvent]
    figures: dict[str, float] = field(default_factory=dict)


@dataclass
class ApiProbe:
    """What the scoring API answered while its serving store was down, and how fast."""

    application: dict
    readyz: httpx.Response | None = None
    score: httpx.Response | None = None
    score_s: float = 0.0
    application_only: httpx.Response | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, api: Api) -> None:
        """Wait for /readyz to report the outage, then ask for a score both ways (in a thread, during it)."""
        while not self.stop.is_set():
            ready = httpx.get(f"{api.url}/readyz", timeout=10)
            if ready.status_code == 503:
                self.readyz = ready
                started = time.monotonic()
                self.score = api.post("/v1/score", self.application)
                self.score_s = time.monotonic() - started
                self.application_only = api.post("/v1/score", self.application, application_only="true")
                return
            time.sleep(0.5)


def _api_key(api_settings: Settings) -> str:
    from scoring_api.keys import create_client_key
    from scoring_api.store import PostgresStore
    store = PostgresStore(api_settings.postgres, api_settings.api)
    try:
        return create_client_key(store, f"outage-test-{time.time_ns()}")
    finally:
        store.close()


def _check_api_probe(api: Api, probe: ApiProbe) -> None:
    """503 with the reason and no score; application-only scored and saying so; ready again afterwards."""
    assert probe.readyz is not None, "the API never reported the serving store down on /readyz"
    assert probe.score is not None and probe.application_only is not None
    print(f"scoring API with PostgreSQL down: /readyz 503 {probe.readyz.json().get('reasons')}; /v1/score "
          f"{probe.score.status_code} {probe.score.json().get('error')} in {probe.score_s:.2f}s; application-only "
          f"{probe.application_only.status_code} behaviour={probe.application_only.json().get('behaviour')}")
    assert probe.score.status_code == 503 and probe.score.json()["error"] == "store_unavailable", probe.score.text
    assert "probability" not in probe.score.text
    assert probe.application_only.status_code == 200, probe.application_only.text
    assert probe.application_only.json()["behaviour"] == "not_used"
    wait_until(lambda: httpx.get(f"{api.url}/readyz", timeout=10).status_code == 200, 120,
               "the scoring API ready again after PostgreSQL came back", every_s=1)
    again = api.post("/v1/score", probe.application)
    assert again.status_code == 200 and again.json()["behaviour"] != "not_used", again.text


def _inject(risk_run: RiskRun, outage: Outage, api: Api, probe: ApiProbe) -> None:
    """Send the outage's stream while the fault happens; return once every task runs again.

    A PostgreSQL outage is also the scoring API's serving store going away: ``probe`` asks it during it.
    """
    s = risk_run.settings
    msgs = [Outgoing(e.topic, e.key, e.value_bytes, "valid", e.event_id) for e in outage.events]
    sent: list = []
    sender = threading.Thread(target=lambda: sent.append(send_tracked(s, msgs, pace_per_s=len(msgs) / SEND_OVER_S)))
    sender.start()
    time.sleep(LEAD_S)
    started = time.monotonic()
    serving_store_down = "postgresql" in outage.name
    prober = threading.Thread(target=probe.run, args=(api,), name="api-probe")
    if serving_store_down:
        prober.start()
    OUTAGES[outage.name](risk_run)
    outage.figures["healed_s"] = time.monotonic() - started
    if serving_store_down:
        probe.stop.set()
        prober.join(60)
        _check_api_probe(api, probe)
    outage.figures["running_s"] = wait_until(lambda: all_tasks_running(s, risk_run.job_id), 600,
                                             f"every task RUNNING again after {outage.name}", s, risk_run.job_id, 1)
    sender.join(600)
    assert sent, f"the producer did not finish during {outage.name}"


def test_broker_postgres_and_object_store_outages_and_a_savepoint_resume_lose_and_double_nothing(
        risk_run: RiskRun) -> None:
    s = before_rotation = risk_run.settings
    outages = [Outage(name, valid_stream(seed=8800 + n, customers=10, start=f"2021-{1 + n:02d}-01T00:00:00Z"))
               for n, name in enumerate(OUTAGES)]
    before = exactly_once_report(s, [])
    restarts_before = restarts(s, risk_run.job_id)
    api_settings = _settings(risk_run)
    template = json.loads(next(e.value_bytes for e in valid_stream(seed=8899, customers=1, start="2021-06-01T00:00:00Z")
                               if e.kind == "loan_application"))
    probe = ApiProbe(_new_application(template, 7001))
    with _served(api_settings) as url:
        api = Api(api_settings, url, _api_key(api_settings))
        warm = api.post("/v1/score", probe.application)  # the key is verified once, as a client's would be
        assert warm.status_code == 200, warm.text
        for outage in outages:
            _inject(risk_run, outage, api, probe)
    every_event = [e for o in outages for e in o.events]
    landed_s = wait_all_landed(s, risk_run.job_id, every_event, 900, "every event sent during the outages landed")
    two_more_checkpoints(s, risk_run.job_id)  # a doubled row would be committed by now
    sinks = read_sinks(s)
    for outage in outages:
        report = exactly_once_report(s, outage.events, sinks)
        print(f"\noutage '{outage.name}': {len(outage.events)} events; healed in {outage.figures['healed_s']:.0f}s, "
              f"tasks RUNNING {outage.figures['running_s']:.0f}s later")
        print("  exactly-once report:", report)
        assert_exactly_once(before, report, outage.name)
    _check_the_key_rotation(before_rotation, risk_run.settings, outages)
    print(f"every outage's events landed {landed_s:.0f}s after the last one; failovers: {restarts_before} of the first "
          f"job before the outages, {restarts(s, risk_run.job_id)} of the resumed job through the ones after it")
    assert all_tasks_running(s, risk_run.job_id)


def _check_the_key_rotation(before: Settings, after: Settings, outages: list[Outage]) -> None:
    """Pseudonyms under both key ids in the lake: each application sent after the rotation under the new key,
    those sent around it under one of the two, the rows from before it still under the old one."""
    apps = [(n, e) for n, o in enumerate(outages) for e in o.events if e.kind == "loan_application"]
    raw = lake(after, "raw_loan_applications", ("event_id", "full_name"))
    stored = dict(zip(raw["event_id"], raw["full_name"]))
    for n, e in apps:
        name = json.loads(e.value_bytes)["full_name"]
        allowed = {_pseudonym(after, name)} | ({_pseudonym(before, name)} if n == 0 else set())
        assert stored[e.event_id] in allowed, (outages[n].name, e.event_id, stored[e.event_id])
    ids = [str(v).partition(":")[0] for v in raw["full_name"].dropna()]
    counts = {k: ids.count(k) for k in sorted(set(ids))}
    print(f"PII key rotation: lake rows by key id {counts}")
    assert before.privacy.pii_key_id in counts and ROTATED_KEY_ID in counts, counts
    assert ROTATED_KEY_ID != before.privacy.pii_key_id
