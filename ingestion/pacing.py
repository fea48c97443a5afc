"""Wall-clock pacing: a token bucket for events per second and a speed-up that maps event time onto the clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from ingestion.wire import ProducedEvent

Clock = Callable[[], float]
Sleep = Callable[[float], None]
T = TypeVar("T")
MIN_SLEEP_S = 0.001  # below this, keep going and let the debt accumulate (sleep() is coarse anyway)


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, with bursts of at most ``burst_s`` seconds' worth."""

    def __init__(self, rate: float, burst_s: float = 0.05, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep):
        if rate <= 0:
            raise ValueError("rate must be > 0 events per second")
        self.rate, self.clock, self.sleep = float(rate), clock, sleep
        self.capacity = max(1.0, rate * burst_s)
        self.tokens = 0.0
        self.last: float | None = None

    def acquire(self, n: int = 1) -> None:
        """Take ``n`` tokens, sleeping while the bucket is in debt by more than MIN_SLEEP_S."""
        now = self.clock()
        if self.last is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        if self.tokens < 0:
            wait = -self.tokens / self.rate
            if wait >= MIN_SLEEP_S:
                self.sleep(wait)


class EventTimePacer:
    """Releases an event no earlier than its event time, compressed by ``speedup`` (simulated s per wall s)."""

    def __init__(self, speedup: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep):
        if speedup <= 0:
            raise ValueError("speedup must be > 0")
        self.speedup, self.clock, self.sleep = float(speedup), clock, sleep
        self.anchor: tuple[float, int] | None = None

    def wait(self, event_ms: int) -> None:
        """Sleep until the wall clock has caught up with ``event_ms`` (earlier events pass at once)."""
        now = self.clock()
        if self.anchor is None:
            self.anchor = (now, event_ms)
            return
        wall0, ev0 = self.anchor
        ahead = wall0 + (event_ms - ev0) / 1000.0 / self.speedup - now
        if ahead >= MIN_SLEEP_S:
            self.sleep(ahead)


def paced(events: Iterable[ProducedEvent], rate: float | None = None, speedup: float | None = None,
          clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> Iterator[ProducedEvent]:
    """``events`` released at most ``rate`` per second and no faster than event time / ``speedup``."""
    bucket = TokenBucket(rate, clock=clock, sleep=sleep) if rate else None
    pacer = EventTimePacer(speedup, clock=clock, sleep=sleep) if speedup else None
    for event in events:
        if pacer is not None:
            pacer.wait(event.event_time_ms)
        if bucket is not None:
            bucket.acquire()
        yield event
