"""The watermark heartbeat: a message carrying only an event time, sent to every partition of each input topic.

Why: the job's watermark is the smallest latest event time over the input partitions (idle ones aside)
less the watermark delay, and a window closes only when the watermark passes its end. When a finite
replay ends nothing moves it any more, so the windows holding the last events would stay open until
new traffic. A producer therefore ends a replay with one heartbeat per partition, at the event time
:func:`closing_time_ms` gives, which closes every window those events are in.

In the job the Kafka sources take a heartbeat's event time as they take an event's (``event_time_of``
reads the same field, with the same future tolerance against the Kafka timestamp), so it moves the
watermark; ``sql/risk/30_validate.sql`` then drops it before validation, so it never reaches a raw
table, a dead letter, a score or a window.

A heartbeat is exactly the bytes :func:`encode_heartbeat` writes, e.g.
``{"heartbeat":true,"event_time":"2019-03-01T00:05:00.000Z"}``: the job recognises it by that pattern,
so any other spelling of the same JSON is an ordinary message (and dead-lettered, as it breaks every
contract). Its Kafka key is :data:`HEARTBEAT_KEY`, so a reconciliation counts heartbeats by key: the
messages of an input topic are its raw rows + dead letters + repeated events + heartbeats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from contracts.events import INPUT_EVENTS

HEARTBEAT_KEY = "loanrisk.heartbeat"
HEARTBEAT_FIELD = "heartbeat"
# Room for a source's clock skew (ingestion/anomalies.py skews by seconds) in the closing time.
SKEW_ALLOWANCE_MS = 60_000


def _event_time_field() -> str:
    """The event-time field every input contract shares (the sources read one field for all topics)."""
    names = {c.event_time_field for c in INPUT_EVENTS}
    if len(names) != 1:
        raise ValueError(f"the input contracts disagree on the event-time field: {sorted(names)}")
    return names.pop()


EVENT_TIME_FIELD = _event_time_field()
_PREFIX = f'{{"{HEARTBEAT_FIELD}":true,"{EVENT_TIME_FIELD}":"'
_SUFFIX = '"}'
# One pattern for Python's re and Java's java.util.regex (Flink's REGEXP is Matcher.find): ASCII digit
# classes only, no `$` (the two engines disagree on line terminators before the end); the exact
# length (HEARTBEAT_CHARS) anchors the end instead.
HEARTBEAT_PATTERN = ("^" + re.escape(_PREFIX) + r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"
                     + re.escape(_SUFFIX))
HEARTBEAT_CHARS = len(_PREFIX) + len("2019-03-01T00:05:00.000Z") + len(_SUFFIX)
_HEARTBEAT_RE = re.compile(HEARTBEAT_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_YEAR_10000_MS = 253_402_300_800_000


def encode_heartbeat(event_time_ms: int) -> bytes:
    """The heartbeat for event time ``event_time_ms`` (epoch milliseconds, UTC), as the message value."""
    if not 0 <= event_time_ms < _YEAR_10000_MS:
        raise ValueError(f"a heartbeat's event time must be within years 1970-9999, got {event_time_ms} ms")
    t = _EPOCH + timedelta(milliseconds=event_time_ms)
    stamp = (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}."
             f"{event_time_ms % 1000:03d}Z")
    return (_PREFIX + stamp + _SUFFIX).encode()


def is_heartbeat(raw: bytes | str | None) -> bool:
    """Whether a message value is a heartbeat: the rule the job's filter applies (:func:`heartbeat_condition`)."""
    if raw is None:
        return False
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray)) else raw
    return len(text) == HEARTBEAT_CHARS and _HEARTBEAT_RE.match(text) is not None


def heartbeat_condition(column: str = "payload") -> str:
    """Flink SQL that is TRUE for a heartbeat in ``column`` and FALSE otherwise, NULL included.

    The length test comes first: real events are far longer, so they never reach the regular expression.
    """
    pattern = HEARTBEAT_PATTERN.replace("'", "''")
    return f"COALESCE(CHAR_LENGTH({column}) = {HEARTBEAT_CHARS} AND REGEXP({column}, '{pattern}'), FALSE)"


def closing_time_ms(last_event_ms: int, window_lengths_ms: Iterable[int], watermark_delay_ms: int) -> int:
    """The heartbeat event time that closes every window holding an event at or before ``last_event_ms``.

    ``last_event_ms`` is the source's own time for its last event; a payload may be ahead of it by the
    source's clock skew, so SKEW_ALLOWANCE_MS is added. An event's window ends within one window length
    after it. Windows feed windows (a closing behaviour window re-scores loans at its end, and those
    scores fall in a risk window), so the lengths add up; and the watermark trails the latest event
    time by the watermark delay.
    """
    return last_event_ms + SKEW_ALLOWANCE_MS + sum(window_lengths_ms) + watermark_delay_ms


def within_tolerance(event_time_ms: int, kafka_timestamp_ms: int, future_tolerance_ms: int) -> tuple[int, bool]:
    """``event_time_ms``, or the latest time the job accepts for this Kafka timestamp, and whether it was cut.

    The sources give any message later than its Kafka timestamp plus the future tolerance epoch 0 as
    its event time (contracts/validate.py, ``event_time_of``): such a heartbeat would move nothing.
    """
    limit = kafka_timestamp_ms + future_tolerance_ms
    return (event_time_ms, False) if event_time_ms <= limit else (limit, True)
