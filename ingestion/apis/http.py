"""Shared JSON-over-HTTP client: token-bucket rate limit, full-jitter retries honouring Retry-After, redaction."""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import httpx

from loanrisk.errors import LoanRiskError

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
Clock = Callable[[], float]


# -- errors ----------------------------------------------------------------------------------------
class ApiError(LoanRiskError):
    """An API call failed; the message is one redacted line that names the API and the fix."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.attempts = attempts


class ApiAuthError(ApiError):
    """The API rejected the credentials (never retried)."""


class ApiRequestError(ApiError):
    """The API rejected the request as invalid (4xx other than 429; never retried)."""


class ApiUnavailable(ApiError):
    """Retries were exhausted (429/5xx/timeouts/connection errors), or the server asked to wait too long."""


class MalformedResponse(ApiError):
    """The API kept answering with a body that is not the JSON object expected."""


ErrorClassifier = Callable[[int, Any], ApiError]


def generic_error(api: str) -> ErrorClassifier:
    """A classifier for APIs without a known error shape."""
    def classify(status: int, payload: Any) -> ApiError:
        kind = ApiAuthError if status in (401, 403) else ApiRequestError
        return kind(f"{api}: HTTP {status}", status=status)
    return classify


# -- redaction -------------------------------------------------------------------------------------
class Redactor:
    """Replaces every known secret (and its URL-encoded and basic-auth forms) with ``***``."""

    MASK = "***"

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._needles: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Register more secrets (short values are ignored: they would mask ordinary text)."""
        for s in secrets:
            if s and len(s) >= 4:
                self._needles.update({s, quote(s, safe=""), json.dumps(s)[1:-1]})

    def add_basic_auth(self, user: str, password: str) -> None:
        """Register the credentials and the base64 token of an HTTP basic-auth header."""
        self.add(user, password, base64.b64encode(f"{user}:{password}".encode()).decode())

    def __call__(self, text: str) -> str:
        for needle in sorted(self._needles, key=len, reverse=True):
            text = text.replace(needle, self.MASK)
        return text


# -- rate limiting and backoff --------------------------------------------------------------------
class TokenBucket:
    """Allows ``rate_per_s`` requests per second on average and bursts of up to ``burst``; thread-safe."""

    def __init__(self, rate_per_s: float, burst: float = 1.0, *, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate, self.burst = rate_per_s, float(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens, self._last = float(burst), clock()
        self._lock = threading.Lock()

    def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, sleeping until they are available; returns the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= tokens:
                    self._tokens -= tokens
                    return waited
                need = (tokens - self._tokens) / self.rate
                self._sleep(need)
                waited += need


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; base/cap are small in tests, seconds in production."""

    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    max_retry_after_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff_base_s < 0 or self.backoff_cap_s < 0:
            raise ValueError("max_attempts must be >= 1 and backoff times >= 0")


def backoff_delay(attempt: int, policy: RetryPolicy, rng: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))] for the ``attempt``-th failure (1-based)."""
    ceiling = min(policy.backoff_cap_s, policy.backoff_base_s * 2.0 ** max(attempt - 1, 0))
    return rng() * ceiling


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent/invalid."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def is_retryable_status(status: int) -> bool:
    """429 and 5xx (except 501 Not Implemented / 505) are worth retrying."""
    return status == 429 or (500 <= status <= 599 and status not in (501, 505))


# -- the client ------------------------------------------------------------------------------------
@dataclass
class HttpStats:
    """Counters for one client: requests sent, retries, and why."""

    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    malformed: int = 0
    connection_errors: int = 0
    throttled_s: float = 0.0
    waits: list[float] = field(default_factory=list)


@lru_cache(maxsize=2)
def _tls_context(https: bool) -> ssl.SSLContext:
    """One verifying TLS context per process (loading the CA bundle per client costs up to a second).

    For plain-http base URLs (loopback fakes only, see ApiSettings) the context is never used; it verifies
    but trusts nothing, so it could not silently accept a certificate either.
    """
    if not https:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    import certifi
    return ssl.create_default_context(cafile=certifi.where())


def load_json(content: bytes) -> Any:
    """Parse JSON keeping non-integral numbers exact (Decimal), as money must never pass through float."""
    return json.loads(content, parse_float=Decimal)


class JsonHttpClient:
    """One API's HTTP client: every call is rate limited, timed out, retried and redacted."""

    def __init__(self, api: str, base_url: str, *, classify: ErrorClassifier | None = None,
                 auth: httpx.Auth | tuple[str, str] | None = None, headers: Mapping[str, str] | None = None,
                 timeout_s: float = 10.0, retry: RetryPolicy | None = None, limiter: TokenBucket | None = None,
                 redactor: Redactor | None = None, sleep: Sleep = time.sleep,
                 rng: Callable[[], float] = random.random) -> None:
        self.api = api
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.limiter = limiter
        self.redact = redactor or Redactor()
        self.stats = HttpStats()
        self._classify = classify or generic_error(api)
        self._sleep, self._rng = sleep, rng
        if isinstance(auth, tuple):
            self.redact.add_basic_auth(*auth)
            auth = httpx.BasicAuth(*auth)
        self._client = httpx.Client(base_url=base_url, auth=auth, headers=dict(headers or {}),
                                    timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                                    verify=_tls_context(base_url.lower().startswith("https://")))

    def __enter__(self) -> JsonHttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send the request, retrying transient failures; returns the JSON object body or raises ApiError."""
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                self.stats.throttled_s += self.limiter.acquire()
            self.stats.requests += 1
            retry_after: float | None = None
            exhausted: type[ApiError] = ApiUnavailable
            try:
                resp = self._client.request(method, path, params=params, json=json_body)
            except httpx.TimeoutException:
                self.stats.timeouts += 1
                failure = f"no response within {self.timeout_s:g}s"
            except httpx.TransportError as exc:
                self.stats.connection_errors += 1
                failure = f"connection failed ({type(exc).__name__})"
            else:
                body = self._parse(resp)
                if resp.is_success:
                    if isinstance(body, dict):
                        return body
                    self.stats.malformed += 1
                    exhausted = MalformedResponse
                    failure = f"HTTP {resp.status_code} with a body that is not a JSON object"
                else:
                    err = self._classify(resp.status_code, body)
                    if not is_retryable_status(resp.status_code):
                        raise self._final(err, attempt)
                    if resp.status_code == 429:
                        self.stats.rate_limited += 1
                    else:
                        self.stats.server_errors += 1
                    failure = str(err)
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            self._before_retry(method, path, attempt, failure, retry_after, exhausted)

    def _before_retry(self, method: str, path: str, attempt: int, failure: str, retry_after: float | None,
                      exhausted: type[ApiError]) -> None:
        where = f"{self.api}: {method} {path}"
        failure = failure.removeprefix(f"{self.api}: ")
        if attempt >= self.retry.max_attempts:
            raise exhausted(self.redact(f"{where} failed after {attempt} attempts: {failure}"), attempts=attempt)
        if retry_after is not None and retry_after > self.retry.max_retry_after_s:
            raise ApiUnavailable(self.redact(
                f"{where}: server asked to retry after {retry_after:.0f}s, more than the "
                f"{self.retry.max_retry_after_s:.0f}s allowed; run again later ({failure})"), attempts=attempt)
        delay = retry_after if retry_after is not None else backoff_delay(attempt, self.retry, self._rng)
        self.stats.retries += 1
        self.stats.waits.append(delay)
        log.warning(self.redact(f"{where}: {failure}; retry {attempt}/{self.retry.max_attempts - 1} "
                                f"in {delay:.2f}s"))
        self._sleep(delay)

    @staticmethod
    def _parse(resp: httpx.Response) -> Any:
        try:
            return load_json(resp.content)
        except ValueError:
            return None

    def _final(self, err: ApiError, attempts: int) -> ApiError:
        err.args = (self.redact(str(err)),)
        err.attempts = attempts
        return err

