"""Pure-Python validation of one event against its contract: the first broken rule, as a reason string."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

from contracts.events import contract_for_topic
from contracts.schema import EventContract, Field

# Rules are checked in this order; the first one broken is the reason (same order as the DLQ docs):
#   too_large                longer than MAX_PAYLOAD_CHARS characters (checked first: never parsed)
#   invalid_json             not UTF-8, not strict JSON (NaN/Infinity are not JSON), or not an object
#   missing:<field>          a required field is absent or null (contract field order)
#   type:<field>             wrong JSON type, integer outside the int/long width, unparsable date/timestamp
#   choice:<field>           value outside the field's enumeration
#   range:<field>            value below minimum / above maximum, or not finite
#   future_event_time        event time later than ``now + future_tolerance``
# Fields the contract does not know are ignored (tolerant reader; see docs/EVENTS.md).
INVALID_JSON = "invalid_json"
TOO_LARGE = "too_large"
MAX_PAYLOAD_CHARS = 65_536  # real events are ~1 KB; a larger message is hostile or broken
FUTURE_EVENT_TIME = "future_event_time"
# Tight on purpose: an accepted event's time advances the job's watermark, so one event accepted
# this far ahead closes every window this much early and later on-time events are dropped as late.
# It only has to absorb clock skew between the source and the producer. This is the default of
# the setting flink.future_tolerance_s; the job and code validating for it pass the setting.
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)
PAST_EVENT_TIME = "past_event_time"
PAST_LIMIT_MS = 946_684_800_000  # 2000-01-01T00:00:00Z: older event times are checked by the Flink job only

_INT_BOUNDS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _reject_constant(token: str) -> Any:
    """json.loads hook: NaN, Infinity and -Infinity are not JSON (RFC 8259)."""
    raise ValueError(f"non-standard JSON constant {token}")


def parse_json(raw: bytes | str) -> dict[str, Any] | None:
    """The decoded JSON object, or None when ``raw`` is not a strict-JSON object."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        value = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def parse_timestamp(value: str) -> datetime | None:
    """An ISO-8601 instant with an explicit zone (``Z`` or ``+hh:mm``), as an aware datetime; else None."""
    if not _TIMESTAMP_RE.match(value):
        return None
    try:
        text = value
        if "." in text:  # Python parses at most microseconds: cut nanoseconds.
            head, _, tail = text.partition(".")
            digits = re.match(r"\d+", tail).group(0)  # type: ignore[union-attr]
            text = f"{head}.{digits[:6].ljust(6, '0')}{tail[len(digits):]}"
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Offsets as java.time (and ISO 8601) take them: minutes 00-59, at most 18 hours either way.
    offset = parsed.utcoffset()
    if value[-1] != "Z" and (int(value[-2:]) > 59 or offset is None or abs(offset) > timedelta(hours=18)):
        return None
    return parsed


def _type_ok(f: Field, value: Any) -> bool:
    """Whether ``value`` has the JSON type (and width) of field ``f``."""
    if f.type == "string":
        return isinstance(value, str)
    if f.type in _INT_BOUNDS:
        lo, hi = _INT_BOUNDS[f.type]
        return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    if f.type == "double":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if f.type == "boolean":
        return isinstance(value, bool)
    if f.type == "date":
        if not isinstance(value, str) or not _DATE_RE.match(value):
            return False
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return True
    if f.type == "timestamp":
        return isinstance(value, str) and parse_timestamp(value) is not None
    return False


def _range_ok(f: Field, value: Any) -> bool:
    """Whether a numeric ``value`` is finite and inside the field's bounds."""
    if f.type not in ("int", "long", "double"):
        return True
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if f.minimum is not None and value < f.minimum:
        return False
    return not (f.maximum is not None and value > f.maximum)


def validate_event(raw: bytes | str | Mapping[str, Any], contract: EventContract, *,
                   now: datetime | None = None,
                   future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE) -> str | None:
    """The first rule ``raw`` breaks against ``contract`` (e.g. ``missing:amount_minor``), or None when valid.

    ``raw`` is the Kafka message value (bytes/str) or an already-decoded dict. ``now`` is the message's
    Kafka timestamp in the job and defaults to the wall clock, as in the Java functions when the
    timestamp is missing; a naive ``now`` is UTC. An event time later than ``now + future_tolerance``
    (compared to the microsecond) is ``future_event_time``; callers validating on the job's behalf pass
    the job's tolerance, ``settings.flink.future_tolerance``.
    """
    broken = event_violations(raw, contract, now=now, future_tolerance=future_tolerance)
    return broken[0] if broken else None


def event_violations(raw: bytes | str | Mapping[str, Any], contract: EventContract, *,
                     now: datetime | None = None, future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
                     past_limit: bool = False) -> list[str]:
    """Every rule ``raw`` breaks, in the order the rules are checked (the first is :func:`validate_event`'s reason).

    A field breaks at most one rule (a value of the wrong type is not range-checked); ``too_large`` and
    ``invalid_json`` stand alone. ``past_limit`` adds the job's own rule, ``past_event_time`` for event
    times before 2000-01-01 (the Java functions check it after ``future_event_time``).
    """
    if not isinstance(raw, Mapping):
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray)) else raw
        if len(text) > MAX_PAYLOAD_CHARS:
            return [TOO_LARGE]
    event = dict(raw) if isinstance(raw, Mapping) else parse_json(raw)
    if event is None:
        return [INVALID_JSON]
    present = {f.name: event.get(f.name) for f in contract.fields}
    broken = [f"missing:{f.name}" for f in contract.fields if not f.nullable and present[f.name] is None]
    typed = []  # present fields of the right type: only these are checked against choices and bounds
    for f in contract.fields:
        if present[f.name] is not None:
            if _type_ok(f, present[f.name]):
                typed.append(f)
            else:
                broken.append(f"type:{f.name}")
    outside = {f.name for f in typed if f.choices is not None and present[f.name] not in f.choices}
    broken += [f"choice:{f.name}" for f in typed if f.name in outside]
    broken += [f"range:{f.name}" for f in typed if f.name not in outside and not _range_ok(f, present[f.name])]
    if contract.event_time_field not in {f.name for f in typed}:
        return broken
    event_time = parse_timestamp(str(present[contract.event_time_field]))  # typed: a string
    now = now or datetime.now(timezone.utc)
    limit = (now if now.tzinfo else now.replace(tzinfo=timezone.utc)) + future_tolerance
    if event_time is not None and event_time > limit:
        broken.append(FUTURE_EVENT_TIME)
    elif past_limit and event_time is not None and event_time.timestamp() * 1000 < PAST_LIMIT_MS:
        broken.append(PAST_EVENT_TIME)
    return broken


def validate_for_topic(raw: bytes | str | Mapping[str, Any], topic: str, *, now: datetime | None = None,
                       future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE) -> str | None:
    """:func:`validate_event` against the contract whose default topic is ``topic``."""
    return validate_event(raw, contract_for_topic(topic), now=now, future_tolerance=future_tolerance)
