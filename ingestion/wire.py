"""What a source hands the producer: one Kafka message (topic, key, JSON bytes) plus test metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts.events import INPUT_EVENTS

try:  # orjson is much faster; the bytes are the same JSON either way (no NaN, UTF-8, compact).
    import orjson

    def encode_event(event: Mapping[str, Any]) -> bytes:
        """An event dict as compact UTF-8 JSON (field order kept)."""
        return orjson.dumps(event)
except ImportError:  # pragma: no cover - orjson is in the platform lock
    import json

    def encode_event(event: Mapping[str, Any]) -> bytes:
        """An event dict as compact UTF-8 JSON (field order kept)."""
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

DEFAULT_TOPICS: dict[str, str] = {c.name: c.topic for c in INPUT_EVENTS}


@dataclass(frozen=True, slots=True)
class ProducedEvent:
    """One message to send. ``kind`` is the contract name; ``anomaly`` says what was done to it, if anything.

    ``anomaly``: "" (clean), "out_of_order", "late", "duplicate" (same event_id and bytes re-sent) or
    "malformed:<variant>"; ``expected_reason`` is the dead-letter reason contracts.validate gives a
    malformed message (None for valid ones). ``event_time_ms`` is the true simulated event time.
    """

    topic: str
    key: str
    value_bytes: bytes
    event_id: str
    kind: str
    event_time_ms: int
    anomaly: str = ""
    expected_reason: str | None = None


def topics_from_settings(topics: Any) -> dict[str, str]:
    """Contract name -> topic from ``settings.kafka.topics`` (a loanrisk.settings.TopicSettings)."""
    return {"loan_application": topics.applications, "transaction": topics.transactions,
            "repayment": topics.repayments}
