"""Event-time helpers: epoch milliseconds <-> the contracts' wire formats (ISO-8601 UTC millis + Z)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

MS_PER_SECOND = 1_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@lru_cache(maxsize=4096)
def _day_string(day: int) -> str:
    """``YYYY-MM-DD`` of the epoch day ``day`` (cached: events cluster on few days)."""
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")


_MINUTES = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as the wire event time, e.g. ``2018-01-14T09:30:00.000Z``."""
    day, rest = divmod(ms, MS_PER_DAY)
    minute, rest = divmod(rest, 60_000)
    return f"{_day_string(day)}T{_MINUTES[minute]}:{rest // 1000:02d}.{rest % 1000:03d}Z"


def iso_date(ms: int) -> str:
    """The UTC calendar date of epoch milliseconds ``ms``, as ``YYYY-MM-DD``."""
    return _day_string(ms // MS_PER_DAY)


def to_ms(t: datetime) -> int:
    """An aware datetime (naive = UTC) as epoch milliseconds."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(round((t - _EPOCH).total_seconds() * 1000))


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def parse_instant(text: str) -> int:
    """``2018-01-01``, ``2018-01-01T00:00:00Z`` or with an offset, as epoch milliseconds."""
    t = datetime.fromisoformat(text.strip())
    return to_ms(t)


def date_ms(d: date) -> int:
    """Midnight UTC of ``d`` as epoch milliseconds."""
    return (d - _EPOCH.date()).days * MS_PER_DAY


def add_months_ms(ms: int, months: int) -> int:
    """``ms`` plus calendar months (day clamped to the month's length), same rule as contracts.outcomes."""
    from contracts.outcomes import add_months

    return to_ms(add_months(from_ms(ms), months))
