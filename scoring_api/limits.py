"""Per-key rate limit (a token bucket per client) and the request body size limit."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """At most ``rate`` requests per second per client on average, ``burst`` at once; a full bucket to start.

    Unlike the producer's pacing bucket (ingestion/pacing.py), it never waits: a request finding the
    bucket empty is refused, told how long until a token is back.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("the rate limit needs rate > 0 and burst >= 1")
        self.rate, self.burst, self.clock = float(rate), float(burst), clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 when ``client`` may go on (a token is taken), else the seconds until it may try again."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                bucket = self._buckets[client] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class BodyTooLarge(Exception):
    """The request body is over the limit."""


async def read_limited(chunks: AsyncIterator[bytes], declared_length: str | None, limit: int) -> bytes:
    """The body from its chunks, refused (BodyTooLarge) as soon as it is known to exceed ``limit`` bytes.

    A Content-Length over the limit is refused before anything is read.
    """
    if declared_length is not None and declared_length.isdigit() and int(declared_length) > limit:
        raise BodyTooLarge(int(declared_length))
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(len(body))
    return bytes(body)
