"""The scoring API on the session's stack: served over HTTP by uvicorn, reading the real serving PostgreSQL,
the registry on the object store and publishing to the real broker, while the session's job runs.

What an origination system relies on: the API's answer for an application is the stream's score row for
it (same features, probability, model version and reason codes), a repeated request publishes once, a
promotion is served without a restart and a corrupt champion leaves the last good model serving.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from contracts.features import FEATURE_NAMES
from loanrisk.settings import Settings, override
from tests.stack.conftest import RiskRun, offline_probabilities, publish_champion
from tests.stack.reliability_helpers import lake, read_topic, serving, valid_stream, wait_until

pytestmark = pytest.mark.stack

RUN = uuid.uuid4().hex[:8]
TIMEOUT_S = 30.0  # the machine runs the job beside the API: a request may wait for a core


@dataclass
class Api:
    """The API served for this module: its settings, base URL and one client's key."""

    settings: Settings
    url: str
    key: str

    def post(self, path: str, body: Any, key: str | None = "", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key if key == '' else key}"} if key is not None else {}
        headers.update(params.pop("headers", {}))
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, params=params, timeout=TIMEOUT_S)


@contextmanager
def _served(s: Settings) -> Iterator[str]:
    """The app on ``s`` served by uvicorn in a thread on ``s.api.port``; yields its base URL once it answers."""
    import uvicorn

    from scoring_api.app import create_app
    server = uvicorn.Server(uvicorn.Config(create_app(s), host="127.0.0.1", port=s.api.port, log_config=None,
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="scoring-api", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{s.api.port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 120, "the scoring API to answer /healthz", every_s=1)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive(), "the API server did not stop"


def _settings(run: RiskRun, **api: Any) -> Settings:
    from stack.process import free_port
    return override(run.settings, api={"host": "127.0.0.1", "port": free_port(), "request_timeout_s": TIMEOUT_S,
                                       "rate_limit_burst": 1000, "rate_limit_per_s": 1000.0, **api})


@pytest.fixture(scope="module")
def api(risk_run: RiskRun) -> Iterator[Api]:
    from scoring_api.keys import create_client_key
    from scoring_api.store import PostgresStore
    s = _settings(risk_run, key_cache_s=0.0)
    store = PostgresStore(s.postgres, s.api)
    try:
        key = create_client_key(store, f"stack-test-{RUN}")
    finally:
        store.close()
    with _served(s) as url:
        wait_until(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, 120,
                   "the scoring API ready (model loaded, serving store reachable)", every_s=1)
        yield Api(s, url, key)


def _new_application(template: dict[str, Any], n: int, event_time: datetime | None = None) -> dict[str, Any]:
    """``template`` as a new application (new event and application ids), at ``event_time`` if given."""
    out = {**template, "event_id": str(uuid.uuid4()), "application_id": f"app_api{RUN}{n:04d}"}
    if event_time is not None:
        out["event_time"] = event_time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return out


def _applications(run: RiskRun) -> list[dict[str, Any]]:
    """Applications of customers the job has behaviour windows for, each timed an hour after one of those
    windows closed (so the stream's lookup and the API's find that window), and of new customers (no window)."""
    templates = {json.loads(m.value_bytes)["customer_id"]: json.loads(m.value_bytes)
                 for m in run.messages if m.kind == "loan_application" and not m.anomaly}
    windows = serving(run.settings, "SELECT DISTINCT ON (customer_id) customer_id, behaviour_as_of "
                                    "FROM customer_behaviour_windows WHERE customer_id = ANY(%s) "
                                    "ORDER BY customer_id, behaviour_as_of DESC LIMIT 6", (sorted(templates),))
    known = [_new_application(templates[c], n, as_of.replace(tzinfo=timezone.utc) + timedelta(hours=1))
             for n, (c, as_of) in enumerate(windows) if c in templates]
    fresh = [json.loads(e.value_bytes) for e in valid_stream(seed=7700, customers=4, start="2019-03-01T00:00:00Z",
                                                             history_months=0) if e.kind == "loan_application"]
    return known + [_new_application(a, 100 + n) for n, a in enumerate(fresh)]


def _published(s: Settings) -> list[str]:
    """The event ids of every committed message on the applications topic (the hostile-input test's
    malformed ones, which have none, left out)."""
    from contracts.validate import parse_json
    events = (parse_json(r.value) for r in read_topic(s, s.kafka.topics.applications))
    return [str(e.get("event_id")) for e in events if isinstance(e, dict)]


def _stream_rows(s: Settings, loans: set[str], timeout_s: float = 300) -> pd.DataFrame:
    """The stream's application score rows of ``loans`` from the lake, once every one is there."""
    rows = pd.DataFrame()

    def there() -> bool:
        nonlocal rows
        df = lake(s, "scores")
        rows = df[(df["trigger_kind"] == "application") & df["loan_id"].isin(loans)]
        return set(rows["loan_id"]) == loans

    wait_until(there, timeout_s, "the stream's score rows of the applications the API published", every_s=5)
    return rows.set_index("loan_id")


def test_the_api_answers_what_the_stream_scores_for_the_same_application(api: Api, risk_run: RiskRun) -> None:
    apps = _applications(risk_run)
    replies = {}
    for app in apps:
        got = api.post("/v1/score", app, publish="true")
        assert got.status_code == 200, got.text
        replies[app["application_id"]] = got.json()
    behaviour = {r["behaviour"] for r in replies.values()}
    print(f"\n{len(apps)} applications through the API, behaviour used: "
          f"{sorted(r['behaviour'] for r in replies.values())}")
    assert "closed_window" in behaviour and "no_window" in behaviour, behaviour
    assert all(r["published"] for r in replies.values())

    stream = _stream_rows(api.settings, set(replies))
    for loan, reply in replies.items():
        row = stream.loc[loan]
        assert reply["model_version"] == row["model_version"], loan
        assert abs(reply["probability"] - float(row["probability"])) <= 1e-6, (loan, reply["probability"],
                                                                               row["probability"])
        assert ",".join(reply["reason_codes"]) == (row["reason_codes"] or ""), loan
        # A declared attribute the application lacks is null in the reply and in the stream's row (NaN here).
        np.testing.assert_allclose([np.nan if reply["features"][n] is None else reply["features"][n]
                                    for n in FEATURE_NAMES],
                                   row[list(FEATURE_NAMES)].to_numpy(float), rtol=1e-9, atol=1e-12, err_msg=loan)
    worst = max(abs(r["probability"] - float(stream.loc[k]["probability"])) for k, r in replies.items())
    print(f"largest probability difference API vs stream: {worst:.2e}")


def test_a_repeated_request_gets_the_first_answer_and_is_published_once(api: Api) -> None:
    app = _new_application(json.loads(next(e.value_bytes for e in valid_stream(
        seed=7711, customers=1, start="2019-04-01T00:00:00Z", history_months=0) if e.kind == "loan_application")), 900)
    key = {"headers": {"Idempotency-Key": f"retry-{RUN}"}}
    first = api.post("/v1/score", app, publish="true", **key)
    again = api.post("/v1/score", app, publish="true", **key)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.content == first.content
    time.sleep(12)  # the broker has it by now; read what was committed
    assert _published(api.settings).count(app["event_id"]) == 1


def test_a_bad_key_or_application_is_refused_with_its_reason_and_nothing_is_published(api: Api) -> None:
    from scoring_api.keys import create_client_key, revoke_client_key
    from scoring_api.store import PostgresStore
    app = _new_application(json.loads(next(e.value_bytes for e in valid_stream(
        seed=7722, customers=1, start="2019-04-01T00:00:00Z", history_months=0) if e.kind == "loan_application")), 901)
    store = PostgresStore(api.settings.postgres, api.settings.api)
    try:
        revoked = create_client_key(store, f"revoked-{RUN}")
        revoke_client_key(store, f"revoked-{RUN}")
    finally:
        store.close()
    refusals = {
        "no key": (api.post("/v1/score", app, key=None, publish="true"), 401, "unauthorized"),
        "unknown key": (api.post("/v1/score", app, key="lrk_nosuchkey_secret", publish="true"), 401, "unauthorized"),
        "revoked key": (api.post("/v1/score", app, key=revoked, publish="true"), 401, "unauthorized"),
        "range breach": (api.post("/v1/score", {**app, "term_months": -3}, publish="true"), 422, "range:term_months"),
        "wrong type": (api.post("/v1/score", {**app, "amount_minor": "lots"}, publish="true"), 422, "type:amount_minor"),
        "malformed JSON": (httpx.post(f"{api.url}/v1/score", content=b'{"event_id": ', params={"publish": "true"},
                                      headers={"Authorization": f"Bearer {api.key}",
                                               "Content-Type": "application/json"}, timeout=TIMEOUT_S),
                           422, "invalid_json"),
        "oversized body": (api.post("/v1/score", {**app, "padding": "x" * (api.settings.api.max_body_bytes + 1)},
                                    publish="true"), 413, ""),
    }
    for what, (got, status, names) in refusals.items():
        body = got.json()
        print(f"{what}: {got.status_code} {body.get('error')}: {body.get('message')}")
        assert got.status_code == status, (what, got.text)
        assert body.get("message"), (what, body)
        assert names in got.text, (what, got.text)
    time.sleep(5)
    assert app["event_id"] not in _published(api.settings)


def test_without_the_serving_store_it_is_not_ready_and_scores_nothing(api: Api, risk_run: RiskRun) -> None:
    """A second instance whose serving database does not answer (nothing listens on its port): never a score
    computed without the behaviour features. (Application-only scoring during an outage, for a key verified
    before it, is covered by tests/unit/test_scoring_api_guards.py.)"""
    from stack.process import free_port
    s = _settings(risk_run)
    s = override(s, postgres={"port": free_port()})
    app = _new_application(json.loads(next(e.value_bytes for e in valid_stream(
        seed=7744, customers=1, start="2019-04-01T00:00:00Z", history_months=0) if e.kind == "loan_application")), 903)
    with _served(s) as url:
        ready = httpx.get(f"{url}/readyz", timeout=10)
        headers = {"Authorization": f"Bearer {api.key}"}
        started = time.monotonic()
        got = httpx.post(f"{url}/v1/score", json=app, headers=headers, timeout=TIMEOUT_S)
        took = time.monotonic() - started
        print(f"\nserving store down: /readyz {ready.status_code} {ready.json().get('reasons')}; "
              f"/v1/score {got.status_code} in {took:.2f}s")
        assert ready.status_code == 503 and ready.json()["reasons"]
        # The key cannot be checked either: 503 (not 401, and no score).
        assert got.status_code == 503, got.text
        assert got.json()["error"] == "store_unavailable", got.text


def test_a_promotion_is_served_without_a_restart_and_a_corrupt_champion_leaves_it_serving(api: Api) -> None:
    from models.registry import Registry
    from tests.stack.test_reliability import _corrupt_champion, _point_champion
    s = api.settings
    registry = Registry.from_settings(s.model.registry(s.s3))
    before = str(registry.champion()["version"])
    app = _new_application(json.loads(next(e.value_bytes for e in valid_stream(
        seed=7733, customers=1, start="2019-04-01T00:00:00Z", history_months=0) if e.kind == "loan_application")), 902)
    promoted = publish_champion(s, seed=7734, family="random_forest")
    corrupt = None
    try:
        replies: list[dict[str, Any]] = []

        def serves() -> bool:
            replies[:] = [api.post("/v1/score", app).json()]
            return replies[0].get("model_version") == promoted

        wait_until(serves, 60, f"the API to serve the promoted {promoted}", every_s=1)
        features = pd.DataFrame([replies[0]["features"]])
        assert abs(replies[0]["probability"] - offline_probabilities(s, promoted, features)[0]) <= 1e-6
        corrupt = _corrupt_champion(s, promoted)
        time.sleep(3 * s.model.poll_interval_s + 2)
        still = api.post("/v1/score", app)
        assert still.status_code == 200 and still.json()["model_version"] == promoted, still.text
        ready = httpx.get(f"{api.url}/readyz", timeout=10)
        metrics = httpx.get(f"{api.url}/metrics", timeout=10).text
        print(f"\npromoted {promoted} served; corrupt {corrupt} left {promoted} serving; /readyz {ready.status_code}")
        assert any(line.startswith("loanrisk_api_model_load_failures") and not line.endswith(" 0.0")
                   for line in metrics.splitlines()), "no model load failure counted"
    finally:
        _point_champion(registry, before, corrupt or promoted)


def test_processes_creating_the_serving_ddl_at_once_all_succeed(stack_settings: Settings) -> None:
    """PostgreSQL's CREATE ... IF NOT EXISTS races itself (the loser fails on the catalog's unique index, as an API
    starting beside a CLI creating a key once did); loanrisk.serving.run_ddl serialises our DDL."""
    import psycopg

    from loanrisk.serving import run_ddl
    pg = stack_settings.postgres
    errors: list[str] = []
    for _ in range(5):
        schema = f"ddl_race_{uuid.uuid4().hex[:8]}"
        ddl = (f"CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {schema}.t (k text PRIMARY KEY); "
               f"CREATE INDEX IF NOT EXISTS t_k ON {schema}.t (k)")
        start = threading.Barrier(6)

        def create(start: threading.Barrier, ddl: str) -> None:
            with psycopg.connect(pg.dsn(pg.serving_db), autocommit=True) as conn:
                start.wait(30)
                try:
                    run_ddl(conn, ddl)
                except psycopg.Error as exc:
                    errors.append(str(exc).splitlines()[0])

        threads = [threading.Thread(target=create, args=(start, ddl)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        with psycopg.connect(pg.dsn(pg.serving_db), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    assert not errors, errors
