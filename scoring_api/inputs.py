"""From a request's application to the model's input row, by the stream's rules.

Validation is the contract's (contracts/validate.py, every broken rule listed, plus the job's own
past-event-time rule); the features are contracts/feature_formulas.py's; the behaviour window is the one
the stream's lookup join finds (sql/risk/70_scoring_input.sql): the customer's window ending at the
event time floored to the window length, else the one before it, else none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from contracts.events import LOAN_APPLICATION
from contracts.feature_formulas import (
    application_feature_values, behaviour_feature_values, behaviour_slots, monthly_income_minor,
)
from contracts.features import FEATURE_NAMES
from contracts.validate import (
    FUTURE_EVENT_TIME, INVALID_JSON, MAX_PAYLOAD_CHARS, PAST_EVENT_TIME, TOO_LARGE, event_violations, parse_json,
    parse_timestamp,
)
from ingestion.timeutil import MS_PER_DAY, iso_ms
from ingestion.wire import encode_event
from scoring_api.schemas import Behaviour, Violation
from scoring_api.store import WindowKey

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TYPE_WORDS = {"string": "a string", "int": "an integer (32-bit)", "long": "an integer (64-bit)",
               "double": "a number", "boolean": "true or false", "date": "a date (YYYY-MM-DD)",
               "timestamp": "an ISO-8601 time with a zone (e.g. 2018-01-14T09:30:00.000Z)"}


def _bounds(minimum: float | None, maximum: float | None, unit: str | None) -> str:
    unit = f" {unit}" if unit else ""
    fmt = "{:g}".format
    if minimum is not None and maximum is not None:
        return f"between {fmt(minimum)} and {fmt(maximum)}{unit}"
    return f"at least {fmt(minimum)}{unit}" if minimum is not None else f"at most {fmt(maximum)}{unit}"


def describe(rule: str, future_tolerance: timedelta) -> Violation:
    """A contract rule (``range:term_months``) with the field it names and what it asks, in words."""
    kind, _, name = rule.partition(":")
    if not name:
        text = {INVALID_JSON: "the body is not a strict JSON object (UTF-8, no NaN or Infinity)",
                TOO_LARGE: f"the application is longer than {MAX_PAYLOAD_CHARS} characters",
                FUTURE_EVENT_TIME: f"event_time is more than {future_tolerance.total_seconds():g} s after now",
                PAST_EVENT_TIME: "event_time is before 2000-01-01"}.get(rule, rule)
        field = LOAN_APPLICATION.event_time_field if rule in (FUTURE_EVENT_TIME, PAST_EVENT_TIME) else None
        return Violation(rule=rule, field=field, message=text)
    f = LOAN_APPLICATION.field(name)
    if kind == "missing":
        text = f"{name} is required"
    elif kind == "type":
        text = f"{name} must be {_TYPE_WORDS[f.type]}"
    elif kind == "choice":
        text = f"{name} must be one of {', '.join(f.choices or ())}"
    else:
        text = f"{name} must be {_bounds(f.minimum, f.maximum, f.unit)}"
    return Violation(rule=rule, field=name, message=text)


def check(raw: bytes | Any, now: datetime, future_tolerance: timedelta) -> tuple[dict[str, Any] | None, list[Violation]]:
    """(the application, []) when ``raw`` (a body or a batch item) is valid, else (None, every broken rule).

    A batch item is checked as the message it would be on the topic, so its size counts as the stream sees it.
    """
    if isinstance(raw, Mapping):
        try:
            encoded = encode_event(raw)
        except (TypeError, ValueError):  # an integer wider than 64 bits: the type rule names it
            encoded = b""
        if len(encoded.decode()) > MAX_PAYLOAD_CHARS:
            return None, [describe(TOO_LARGE, future_tolerance)]
    elif not isinstance(raw, (bytes, str)):
        return None, [describe(INVALID_JSON, future_tolerance)]
    rules = event_violations(raw, LOAN_APPLICATION, now=now, future_tolerance=future_tolerance, past_limit=True)
    if rules:
        return None, [describe(r, future_tolerance) for r in rules]
    event = dict(raw) if isinstance(raw, Mapping) else parse_json(raw)
    assert event is not None  # valid JSON: checked above
    return event, []


def event_time_ms(event: Mapping[str, Any]) -> int:
    """The application's event time as epoch milliseconds (floored, as the job's TIMESTAMP(3))."""
    parsed = parse_timestamp(event[LOAN_APPLICATION.event_time_field])
    assert parsed is not None  # validated
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def window_ms(behaviour_window_days: int) -> int:
    """The behaviour window length (settings.flink.behaviour_window_days) in milliseconds."""
    return behaviour_window_days * MS_PER_DAY


def window_keys(event: Mapping[str, Any], window: int) -> tuple[WindowKey, WindowKey]:
    """The (customer, behaviour_as_of) of the window closed at the event time, and of the one before it."""
    closed, previous = behaviour_slots(event_time_ms(event), window)
    customer = str(event[LOAN_APPLICATION.key])
    return (customer, closed), (customer, previous)


@dataclass(frozen=True)
class ScoringInput:
    """One application's model input row and where its behaviour came from."""

    event: dict[str, Any]
    features: dict[str, float]  # FEATURE_NAMES order
    behaviour: Behaviour
    behaviour_as_of_ms: int | None

    @property
    def row(self) -> list[float]:
        """The row the scorer takes: every feature column, in contract order (NaN: an attribute the application
        lacks, which the scorer gives the model's reference value, as in the stream)."""
        return [self.features[name] for name in FEATURE_NAMES]

    @property
    def reply_features(self) -> dict[str, float | None]:
        """The features as the reply states them: null for an attribute the application lacks (as the lake)."""
        return {name: None if math.isnan(v) else v for name, v in self.features.items()}

    @property
    def behaviour_as_of(self) -> str | None:
        """End of the behaviour window used, ISO-8601 UTC."""
        return None if self.behaviour_as_of_ms is None else iso_ms(self.behaviour_as_of_ms)


def scoring_input(event: dict[str, Any], windows: Mapping[WindowKey, Mapping[str, float]] | None,
                  window: int) -> ScoringInput:
    """The application's features with the behaviour window the stream would join (``windows`` None: not used)."""
    closed_key, previous_key = window_keys(event, window)
    closed = previous = None
    if windows is not None:
        closed, previous = windows.get(closed_key), windows.get(previous_key)
    features = {**application_feature_values(event),
                **behaviour_feature_values(closed, previous, monthly_income_minor(event["annual_income_minor"]))}
    source: Behaviour = ("not_used" if windows is None else "closed_window" if closed is not None
                         else "previous_window" if previous is not None else "no_window")
    as_of = closed_key[1] if closed is not None else previous_key[1] if previous is not None else None
    return ScoringInput(event, {name: features[name] for name in FEATURE_NAMES}, source, as_of)


def wanted_windows(events: Sequence[Mapping[str, Any]], window: int) -> list[WindowKey]:
    """Every (customer, behaviour_as_of) the applications may join, for one lookup."""
    return [key for e in events for key in window_keys(e, window)]
