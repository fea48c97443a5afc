"""What stands before a score: API keys, rate limits, body size, idempotency, timeouts, the serving store's health;
and what comes out besides it: health checks, metrics, logs without personal data."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scoring_api.keys import MISSING, REVOKED, UNKNOWN, ApiKeyError, create_client_key, revoke_client_key
from tests.scoring_api_support import Api, TrainedModel, generated_applications, running_api, train_model


@pytest.fixture(scope="module")
def applications() -> list[dict[str, Any]]:
    return generated_applications(customers=12, seed=21)


@pytest.fixture(scope="module")
def model(applications: list[dict[str, Any]]) -> TrainedModel:
    return train_model(7, applications)


@pytest.fixture
def api(tmp_path: Path, model: TrainedModel) -> Iterator[Api]:
    with running_api(tmp_path, model, key_cache_s=0) as running:
        yield running


def error_of(response: Any) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["message"]


# --- API keys --------------------------------------------------------------------------------------------------

def test_a_missing_key_is_401_saying_how_to_send_one(api: Api, applications: list[dict]) -> None:
    response = api.client.post("/v1/score", json=applications[0])
    assert error_of(response) == (401, "unauthorized", MISSING)
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("make_key", [
    lambda key: "lrk_000000000000_" + "A" * 43,  # well formed, never issued
    lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # the right key id, a wrong secret
    lambda key: "not-a-key",
])
def test_an_unknown_key_is_401(api: Api, applications: list[dict], make_key: Any) -> None:
    assert error_of(api.score(applications[0], key=make_key(api.key))) == (401, "unauthorized", UNKNOWN)


def test_a_revoked_key_is_401_and_the_client_may_get_a_new_one(api: Api, applications: list[dict]) -> None:
    assert api.score(applications[0]).status_code == 200
    revoke_client_key(api.store, "origination")
    assert error_of(api.score(applications[0])) == (401, "unauthorized", REVOKED)
    with pytest.raises(ApiKeyError, match="no API key to revoke"):
        revoke_client_key(api.store, "origination")
    fresh = create_client_key(api.store, "origination")
    assert api.score(applications[0], key=fresh).status_code == 200
    assert error_of(api.score(applications[0]))[0] == 401  # the old key stays dead


def test_keys_are_stored_hashed_one_per_client(api: Api) -> None:
    [stored] = api.store.keys()
    assert api.key not in json.dumps(stored.__dict__, default=str)
    assert stored.key_id in api.key and stored.key_hash not in api.key
    with pytest.raises(ApiKeyError, match="already has an API key"):
        create_client_key(api.store, "origination")
    with pytest.raises(ApiKeyError, match="client name"):
        create_client_key(api.store, "bad name!")


def test_a_revocation_reaches_a_caching_service_within_the_cache_time(tmp_path: Path, model: TrainedModel,
                                                                     applications: list[dict]) -> None:
    with running_api(tmp_path, model, key_cache_s=5) as api:
        assert api.score(applications[0]).status_code == 200
        revoke_client_key(api.store, "origination")
        assert api.score(applications[0]).status_code == 200  # trusted for key_cache_s
        api.clock.advance(5)
        assert error_of(api.score(applications[0])) == (401, "unauthorized", REVOKED)


# --- limits ----------------------------------------------------------------------------------------------------

def test_the_rate_limit_is_per_key_with_retry_after(tmp_path: Path, model: TrainedModel,
                                                    applications: list[dict]) -> None:
    with running_api(tmp_path, model, rate_limit_per_s=0.5, rate_limit_burst=2) as api:
        other = create_client_key(api.store, "broker")
        assert [api.score(applications[0]).status_code for _ in range(2)] == [200, 200]
        response = api.score(applications[0])
        assert error_of(response)[:2] == (429, "rate_limited")
        assert response.headers["Retry-After"] == "2"
        assert api.score(applications[0], key=other).status_code == 200  # another client has its own bucket
        api.clock.advance(2)
        assert api.score(applications[0]).status_code == 200
        assert api.score(applications[0]).status_code == 429


def test_a_body_over_the_limit_is_413_declared_or_streamed(tmp_path: Path, model: TrainedModel,
                                                           applications: list[dict]) -> None:
    with running_api(tmp_path, model, max_body_bytes=2048) as api:
        big = json.dumps({**applications[0], "purpose": "x" * 3000})
        assert error_of(api.score(big))[:2] == (413, "body_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body arrives
            for i in range(0, len(big), 500):
                yield big[i:i + 500].encode()

        response = api.client.post("/v1/score", content=chunks(), headers=api.headers())
        assert error_of(response)[:2] == (413, "body_too_large")
        assert api.score(applications[0]).status_code == 200


def test_a_request_over_its_time_is_504_and_publishes_nothing(tmp_path: Path, model: TrainedModel,
                                                              applications: list[dict]) -> None:
    with running_api(tmp_path, model, request_timeout_s=0.2, lookup_delay_s=0.5) as api:
        response = api.score(applications[0], params={"publish": "true"})
        assert error_of(response)[:2] == (504, "timeout")
        # Ordering, not elapsed time: the reply came while the 0.5 s lookup was still running.
        assert (api.store.lookups, api.store.lookups_done) == (1, 0), "the reply waited for the lookup"
        time.sleep(0.6)  # the abandoned work has ended: it stopped at the deadline instead of publishing
        assert api.publisher.sent == []


# --- idempotency -----------------------------------------------------------------------------------------------

def test_a_repeated_idempotency_key_returns_the_stored_answer_and_publishes_once(api: Api,
                                                                               applications: list[dict]) -> None:
    first = api.score(applications[0], params={"publish": "true"}, **{"Idempotency-Key": "order-1"})
    api.store.add_window(applications[0]["customer_id"], 0, dpd_max=5)  # nothing that happens since changes it
    second = api.score(applications[0], params={"publish": "true"}, **{"Idempotency-Key": "order-1"})
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert len(api.publisher.sent) == 1


def test_an_idempotency_key_is_the_clients_own(api: Api, applications: list[dict]) -> None:
    other = create_client_key(api.store, "broker")
    api.score(applications[0], params={"publish": "true"}, **{"Idempotency-Key": "k"})
    response = api.score(applications[0], key=other, params={"publish": "true"}, **{"Idempotency-Key": "k"})
    assert response.status_code == 200 and "Idempotent-Replayed" not in response.headers
    assert len(api.publisher.sent) == 2


def test_an_idempotency_key_reused_for_another_request_is_refused(api: Api, applications: list[dict]) -> None:
    assert api.score(applications[0], **{"Idempotency-Key": "k"}).status_code == 200
    assert error_of(api.score(applications[1], **{"Idempotency-Key": "k"}))[:2] == (422, "idempotency_key_reused")
    assert error_of(api.score(applications[0], params={"publish": "true"}, **{"Idempotency-Key": "k"}))[:2] == \
        (422, "idempotency_key_reused")


def test_an_invalid_application_is_answered_the_same_again_but_a_failure_is_not_kept(
        api: Api, applications: list[dict]) -> None:
    bad = {**applications[0], "term_months": 0}
    first = api.score(bad, **{"Idempotency-Key": "bad"})
    assert first.status_code == 422
    assert api.score(bad, **{"Idempotency-Key": "bad"}).content == first.content
    api.publisher.failing = True
    assert api.score(applications[0], params={"publish": "true"}, **{"Idempotency-Key": "p"}).status_code == 503
    api.publisher.failing = False
    retried = api.score(applications[0], params={"publish": "true"}, **{"Idempotency-Key": "p"})
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    assert len(api.publisher.sent) == 1


def test_a_batch_with_an_unpublished_application_is_not_kept_for_its_key(api: Api, applications: list[dict]) -> None:
    api.publisher.failing = True
    failed = api.batch(applications[:2], params={"publish": "true"}, **{"Idempotency-Key": "b"})
    assert [r["status"] for r in failed.json()["results"]] == [503, 503]
    api.publisher.failing = False
    retried = api.batch(applications[:2], params={"publish": "true"}, **{"Idempotency-Key": "b"})
    assert [r["status"] for r in retried.json()["results"]] == [200, 200]
    assert "Idempotent-Replayed" not in retried.headers
    again = api.batch(applications[:2], params={"publish": "true"}, **{"Idempotency-Key": "b"})
    assert again.content == retried.content and again.headers["Idempotent-Replayed"] == "true"
    assert len(api.publisher.sent) == 2


def test_an_idempotency_key_expires(tmp_path: Path, model: TrainedModel, applications: list[dict]) -> None:
    with running_api(tmp_path, model, idempotency_ttl_s=60, key_cache_s=0) as api:
        api.score(applications[0], **{"Idempotency-Key": "k"})
        api.clock.advance(61)
        response = api.score(applications[0], **{"Idempotency-Key": "k"})
        assert response.status_code == 200 and "Idempotent-Replayed" not in response.headers


# --- the serving store down, health ----------------------------------------------------------------------------

def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "model_version": None, "reasons": []}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == api.model.version


def test_with_the_store_down_readyz_says_so_and_scores_are_refused_unless_application_only(
        api: Api, applications: list[dict]) -> None:
    assert api.score(applications[0]).status_code == 200  # the key is checked while the store is up
    api.store.down = True
    ready = api.client.get("/readyz")
    assert ready.status_code == 503 and "unreachable" in " ".join(ready.json()["reasons"])
    started = time.monotonic()
    response = api.score(applications[0], params={"publish": "true"})
    assert time.monotonic() - started < 0.5
    status, code, message = error_of(response)
    assert (status, code) == (503, "store_unavailable") and "application_only" in message
    assert api.publisher.sent == []
    only = api.score(applications[0], params={"application_only": "true"})
    assert only.status_code == 200
    body = only.json()
    assert body["behaviour"] == "not_used" and body["behaviour_as_of"] is None
    assert body["features"]["behaviour_windows"] == 0.0
    batch = api.batch(applications[:2])
    assert error_of(batch)[:2] == (503, "store_unavailable")
    assert api.batch(applications[:2], params={"application_only": "true"}).status_code == 200


def test_a_key_never_seen_cannot_be_checked_while_the_store_is_down(api: Api, applications: list[dict]) -> None:
    api.store.down = True
    assert error_of(api.score(applications[0]))[:2] == (503, "store_unavailable")


def test_an_idempotency_key_with_the_store_down_is_503_not_a_second_publish(api: Api, applications: list[dict]) -> None:
    api.score(applications[0], params={"publish": "true"}, **{"Idempotency-Key": "k"})
    api.store.down = True
    response = api.score(applications[0], params={"publish": "true", "application_only": "true"},
                         **{"Idempotency-Key": "k"})
    assert error_of(response)[:2] == (503, "store_unavailable")
    assert len(api.publisher.sent) == 1


# --- metrics and logs ------------------------------------------------------------------------------------------

def test_metrics_count_requests_latency_errors_and_the_model(api: Api, applications: list[dict]) -> None:
    api.score(applications[0])
    api.score({**applications[0], "term_months": 0, "product": "yacht"})
    api.client.post("/v1/score", json=applications[0])
    text = api.client.get("/metrics").text
    assert 'loanrisk_api_requests_total{route="/v1/score",status="200"} 1.0' in text
    assert 'loanrisk_api_requests_total{route="/v1/score",status="422"} 1.0' in text
    assert 'loanrisk_api_requests_total{route="/v1/score",status="401"} 1.0' in text
    assert 'loanrisk_api_request_seconds_bucket{le="+Inf",route="/v1/score"} 3.0' in text
    assert 'loanrisk_api_errors_total{reason="range"} 1.0' in text
    assert 'loanrisk_api_errors_total{reason="choice"} 1.0' in text
    assert 'loanrisk_api_errors_total{reason="unauthorized"} 1.0' in text
    assert f'loanrisk_api_model_info{{version="{api.model.version}"}} 1.0' in text
    assert "loanrisk_api_model_load_failures_total 0.0" in text
    assert 'loanrisk_api_scored_applications_total{behaviour="no_window"} 1.0' in text


def test_no_personal_data_reaches_the_logs(api: Api, applications: list[dict], caplog: pytest.LogCaptureFixture) -> None:
    person = {**applications[0], "full_name": "Ottoline Quarrendon", "email": "ottoline@example.org",
              "phone": "+44 7700 900123"}
    with caplog.at_level(logging.DEBUG):
        api.score(person, params={"publish": "true"})
        api.score({**person, "term_months": 0})
        api.batch([person, {**person, "amount_minor": "x"}])
        api.store.down = True
        api.score(person)
    assert caplog.records, "the API logs nothing at all: the check would prove nothing"
    for value in ("Ottoline", "Quarrendon", "ottoline@example.org", "7700 900123"):
        assert value not in caplog.text
