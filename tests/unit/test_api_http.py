"""The shared API HTTP client against a local fake API: retries, Retry-After, timeouts, rate limit, redaction."""

from __future__ import annotations

import base64
import email.utils
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ingestion.apis import ApiSettings
from ingestion.apis.http import (
    ApiAuthError,
    ApiRequestError,
    ApiUnavailable,
    JsonHttpClient,
    MalformedResponse,
    Redactor,
    RetryPolicy,
    TokenBucket,
    backoff_delay,
    parse_retry_after,
)
from ingestion.apis.razorpayx import RazorpayXClient
from loanrisk.errors import ConfigError
from tests.fake_apis import Fault
from tests.fake_apis.razorpayx_server import ACCOUNT, FakeRazorpayX, make_transaction

FAST = RetryPolicy(max_attempts=4, backoff_base_s=0.001, backoff_cap_s=0.004, max_retry_after_s=5)
PATH = "/v1/transactions"


@pytest.fixture
def server() -> Iterator[FakeRazorpayX]:
    with FakeRazorpayX() as srv:
        srv.add_transactions(make_transaction(1, 1_700_000_000, credit=10_000))
        yield srv


def client_for(srv: FakeRazorpayX, *, secret: str | None = None, timeout_s: float = 2.0,
               retry: RetryPolicy = FAST, **kwargs: object) -> RazorpayXClient:
    return RazorpayXClient(srv.key_id, secret or srv.key_secret, srv.base_url, timeout_s=timeout_s, retry=retry,
                           rate_per_s=1000, burst=100, **kwargs)  # type: ignore[arg-type]


def list_once(client: RazorpayXClient) -> list[dict[str, Any]]:
    return client.list("transactions", account_number=ACCOUNT, count=10)


# -- pure building blocks ----------------------------------------------------------------------------
def test_token_bucket_allows_burst_then_paces_at_rate() -> None:
    now, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10, burst=2, clock=lambda: now[0], sleep=sleep)
    assert [bucket.acquire(), bucket.acquire()] == [0.0, 0.0]
    assert bucket.acquire() == pytest.approx(0.1)
    now[0] += 60.0  # a long idle period refills only up to the burst
    assert [bucket.acquire(), bucket.acquire()] == [0.0, 0.0]
    assert bucket.acquire() == pytest.approx(0.1)
    assert len(slept) == 2


def test_backoff_is_full_jitter_capped_exponential() -> None:
    policy = RetryPolicy(backoff_base_s=1.0, backoff_cap_s=8.0)
    assert [backoff_delay(n, policy, rng=lambda: 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert backoff_delay(3, policy, rng=lambda: 0.0) == 0.0
    assert backoff_delay(3, policy, rng=lambda: 0.5) == 2.0


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(" 7 ", now) == 7.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == pytest.approx(30.0)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("-5", now) is None


def test_redactor_masks_plain_encoded_and_basic_auth_forms() -> None:
    redact = Redactor(["s3cr/et+value"])
    redact.add_basic_auth("rzp_key", "pw-12345")
    token = base64.b64encode(b"rzp_key:pw-12345").decode()
    text = f"a s3cr/et+value b s3cr%2Fet%2Bvalue c pw-12345 d Basic {token} e rzp_key"
    assert redact(text) == "a *** b *** c *** d Basic *** e ***"


# -- against the fake server -------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_transient_server_errors_are_retried_until_success(server: FakeRazorpayX, status: int) -> None:
    server.inject(Fault.server_error(status), times=2)
    with client_for(server) as client:
        items = list_once(client)
        assert [i["id"] for i in items] == ["txn_00000000000001"]
        assert client.http.stats.retries == 2 and client.http.stats.server_errors == 2
    assert server.hits(PATH) == 3


def test_gives_up_after_max_attempts(server: FakeRazorpayX) -> None:
    server.inject(Fault.server_error(500), times=10)
    with client_for(server) as client, pytest.raises(ApiUnavailable, match="after 4 attempts") as exc:
        list_once(client)
    assert exc.value.attempts == 4
    assert server.hits(PATH) == 4


def test_429_retry_after_seconds_is_honoured(server: FakeRazorpayX) -> None:
    server.inject(Fault.rate_limited("1"))
    with client_for(server) as client:
        assert len(list_once(client)) == 1
        assert client.http.stats.rate_limited == 1
        assert client.http.stats.waits == [1.0]  # the server's value, not the (tiny) backoff
    assert server.hits(PATH) == 2


def test_429_retry_after_http_date_is_honoured(server: FakeRazorpayX) -> None:
    waits: list[float] = []
    server.inject(Fault.rate_limited(email.utils.formatdate(time.time() + 2, usegmt=True)))
    with client_for(server, sleep=waits.append) as client:
        assert len(list_once(client)) == 1
    assert len(waits) == 1 and 0.5 < waits[0] <= 2.0  # until the date (second resolution), not the backoff
    assert server.hits(PATH) == 2


def test_retry_after_beyond_the_allowed_wait_fails_fast(server: FakeRazorpayX) -> None:
    server.inject(Fault.rate_limited("3600"))
    with client_for(server) as client, pytest.raises(ApiUnavailable, match="3600s"):
        list_once(client)
    assert server.hits(PATH) == 1


def test_malformed_json_is_retried(server: FakeRazorpayX) -> None:
    server.inject(Fault.malformed())
    with client_for(server) as client:
        assert len(list_once(client)) == 1
        assert client.http.stats.malformed == 1 and client.http.stats.retries == 1
    assert server.hits(PATH) == 2


def test_persistently_malformed_json_raises(server: FakeRazorpayX) -> None:
    server.inject(Fault.malformed(), times=10)
    with client_for(server) as client, pytest.raises(MalformedResponse, match="not a JSON object"):
        list_once(client)
    assert server.hits(PATH) == FAST.max_attempts


def test_malformed_error_body_on_5xx_is_still_a_retryable_5xx(server: FakeRazorpayX) -> None:
    server.inject(Fault.malformed(status=502))
    with client_for(server) as client:
        assert len(list_once(client)) == 1
        assert client.http.stats.server_errors == 1
    assert server.hits(PATH) == 2


def test_slow_response_times_out_and_is_retried(server: FakeRazorpayX) -> None:
    server.inject(Fault.slow(2.0))
    with client_for(server, timeout_s=0.2) as client:
        assert len(list_once(client)) == 1
        assert client.http.stats.timeouts == 1 and client.http.stats.retries == 1
    assert server.hits(PATH) == 2


def test_client_errors_are_not_retried(server: FakeRazorpayX) -> None:
    with JsonHttpClient("razorpayx", server.base_url, auth=(server.key_id, server.key_secret), retry=FAST) as http:
        with pytest.raises(ApiRequestError, match="HTTP 400"):
            http.request("GET", "/v1/unknown")
        assert http.stats.retries == 0
    assert server.hits("/v1/unknown") == 1


def test_connection_refused_is_retried_then_reported() -> None:
    dead = FakeRazorpayX().start()
    url = dead.base_url
    dead.stop()
    with JsonHttpClient("razorpayx", url, retry=RetryPolicy(max_attempts=2, backoff_base_s=0.001)) as http:
        with pytest.raises(ApiUnavailable, match="connection failed"):
            http.request("GET", PATH)
        assert http.stats.connection_errors == 2


def test_rate_limiter_spaces_requests(server: FakeRazorpayX) -> None:
    with RazorpayXClient(server.key_id, server.key_secret, server.base_url, retry=FAST, rate_per_s=50,
                         burst=1) as client:
        for _ in range(4):
            list_once(client)
        assert client.http.stats.throttled_s > 0
    assert server.hits(PATH) == 4


def test_credentials_never_appear_in_errors_or_logs(server: FakeRazorpayX, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-secret-abcdef"
    token = base64.b64encode(f"{server.key_id}:{wrong}".encode()).decode()
    server.inject(Fault.server_error(503))  # one retry, so a warning is logged before the 401
    caplog.set_level(logging.DEBUG)
    with client_for(server, secret=wrong) as client, pytest.raises(ApiAuthError) as exc:
        list_once(client)
    assert "RAZORPAYX_KEY_SECRET" in str(exc.value)
    assert exc.value.status == 401 and server.hits(PATH) == 2
    assert caplog.records, "expected the retry to be logged"
    for text in (str(exc.value), repr(exc.value), caplog.text):
        for secret in (wrong, token, server.key_id):
            assert secret not in text


def test_api_settings_read_the_environment_and_refuse_plain_http_off_loopback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PLAID_CLIENT_ID", "PLAID_SECRET", "PLAID_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="set PLAID_CLIENT_ID and PLAID_SECRET"):
        ApiSettings.load().plaid_credentials()
    monkeypatch.setenv("PLAID_CLIENT_ID", "cid-1234")
    monkeypatch.setenv("PLAID_SECRET", "sec-5678")
    settings = ApiSettings.load()
    assert settings.plaid_credentials() == ("cid-1234", "sec-5678")
    assert "sec-5678" not in repr(settings) and settings.plaid_base_url == "https://sandbox.plaid.com"
    monkeypatch.setenv("PLAID_BASE_URL", "http://127.0.0.1:8080/")
    assert ApiSettings.load().plaid_base_url == "http://127.0.0.1:8080"
    monkeypatch.setenv("PLAID_BASE_URL", "http://sandbox.plaid.com")
    with pytest.raises(ConfigError, match="invalid PLAID_BASE_URL: must use https://"):
        ApiSettings.load()
