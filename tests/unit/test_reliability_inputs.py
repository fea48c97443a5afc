"""The reliability suite's inputs are what they claim: every hostile message is invalid, erasure matches ids."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime, timezone

from contracts.validate import MAX_PAYLOAD_CHARS, TOO_LARGE, validate_event
from contracts.events import INPUT_EVENTS
from ingestion.wire import DEFAULT_TOPICS
from erasure.customer import ErasureReport, payload_names_customer
from tests.stack.reliability_helpers import (
    CATEGORIES, LAKE_RAW, Outgoing, hostile_messages, mixed_stream, valid_stream,
)

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
CONTRACT_OF_TOPIC = {c.topic: c for c in INPUT_EVENTS}


def _hostile(count: int = 900, huge: list[int] | None = None) -> list[Outgoing]:
    events = valid_stream(seed=11, customers=3, start="2018-03-01T00:00:00Z")
    templates = {k: json.loads(next(e for e in events if e.kind == k).value_bytes) for k in LAKE_RAW}
    return hostile_messages(templates, DEFAULT_TOPICS, "unit", count, huge or [], random.Random(1))


def test_every_hostile_message_breaks_a_contract_rule() -> None:
    accepted = []
    for m in _hostile():
        reason = validate_event(m.value, CONTRACT_OF_TOPIC[m.topic], now=NOW)
        if reason is None:
            year = json.loads(m.value)["event_time"][:4]
            if not (m.category == "far_date" and year < "2000"):  # past_event_time is a Flink-only rule
                accepted.append((m.category, m.value[:200]))
    assert not accepted, accepted[:5]


def test_hostile_messages_cover_every_category_on_every_topic() -> None:
    seen = Counter((m.topic, m.category) for m in _hostile())
    assert {c for _, c in seen} == set(CATEGORIES)
    assert all(seen[(t, c)] > 0 for t in DEFAULT_TOPICS.values() for c in CATEGORIES)


def test_huge_strings_are_too_large_and_fit_the_producer_limit() -> None:
    huge = [m for m in _hostile(0, [70_000, 1_000_000, 1_000_000, 1_000_000]) if m.category == "huge_string"]
    assert len(huge) == 4
    for m in huge:
        assert validate_event(m.value, CONTRACT_OF_TOPIC[m.topic], now=NOW) == TOO_LARGE
        assert len(m.value) < 2 * 1024 * 1024  # kafka.max_message_bytes default
    assert max(len(m.value.decode()) for m in huge) > 1_000_000 > MAX_PAYLOAD_CHARS


def test_mixed_stream_keeps_valid_order_and_puts_repeats_after_their_original() -> None:
    valid = [Outgoing("t", "k", str(i).encode(), "valid", f"e{i}") for i in range(50)]
    hostile = [Outgoing("t", "k", b"x", "invalid_json") for _ in range(20)]
    out = mixed_stream(valid, hostile, {3: 2, 10: 1}, random.Random(2))
    assert [m for m in out if m.category == "valid"] == valid
    assert len(out) == 73
    for eid in ("e3", "e10"):
        first = next(i for i, m in enumerate(out) if m.event_id == eid and m.category == "valid")
        assert all(i > first for i, m in enumerate(out) if m.event_id == eid and m.category == "duplicate")


def test_erasure_matches_dead_letters_by_customer_id_text_and_reports_every_sink() -> None:
    assert payload_names_customer('{"customer_id":"cus_1","x":1', "cus_1")
    assert not payload_names_customer('{"customer_id":"cus_2"}', "cus_1")
    assert not payload_names_customer(None, "cus_1")
    # Exact: another customer whose id starts with this one is not named (c1 is not c12), in JSON or text.
    assert not payload_names_customer('{"customer_id":"cus_12"}', "cus_1")
    assert not payload_names_customer("{'customer_id': 'cus_12', 'x'", "cus_1")
    assert payload_names_customer("{'customer_id': 'cus_1', 'x'", "cus_1")
    assert payload_names_customer('{"customer_id": 1234}', "1234")  # a type error still names them
    assert payload_names_customer('{"x": {"customer_id": ["cus_1"]}}', "cus_1")
    report = ErasureReport("cus_1", removed={"lake.scores": 2}, failed={"snowflake": "down"})
    assert report.lines() == ["lake.scores: 2 row(s) removed", "snowflake: FAILED: down"]
