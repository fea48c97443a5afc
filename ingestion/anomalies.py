"""Real-world messiness on top of a clean event stream: skew, disorder, late events, duplicates, malformed messages.

All delays are in simulated event time: a message is emitted once the clean stream has reached its
emission time (event time + delay). Malformed messages are extra corrupted copies with a fresh
event id, so the valid stream (and the ground truth) stays complete.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.events import LOAN_APPLICATION, REPAYMENT, TRANSACTION, EventContract
from contracts.validate import FUTURE_EVENT_TIME, INVALID_JSON
from ingestion.behaviour import Event
from ingestion.synthetic_customers import rng_for
from ingestion.timeutil import iso_ms
from ingestion.wire import DEFAULT_TOPICS, ProducedEvent, encode_event

CONTRACTS: dict[str, EventContract] = {c.name: c for c in (LOAN_APPLICATION, TRANSACTION, REPAYMENT)}
AMOUNT_FIELD = {"loan_application": "amount_minor", "transaction": "amount_minor", "repayment": "amount_due_minor"}
MALFORMED_VARIANTS = ("invalid_json", "nan_amount", "missing_field", "wrong_type", "negative_amount", "far_future")


@dataclass(frozen=True)
class AnomalyConfig:
    """Shares (0..1 of clean events) and sizes (simulated seconds) of each kind of messiness."""

    event_time_skew_s: float = 0.0
    out_of_order: float = 0.0
    max_disorder_s: float = 300.0
    late: float = 0.0
    late_delay_s: float = 6 * 3600.0
    duplicates: float = 0.0
    duplicate_delay_s: float = 120.0
    malformed: float = 0.0

    def __post_init__(self) -> None:
        for name in ("out_of_order", "late", "duplicates", "malformed"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"anomaly share {name} must be within [0, 1]")
        if self.out_of_order + self.late > 1.0:
            raise ValueError("out_of_order + late must not exceed 1")
        for name in ("event_time_skew_s", "max_disorder_s", "late_delay_s", "duplicate_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def active(self) -> bool:
        """Whether any anomaly is switched on."""
        return any((self.event_time_skew_s, self.out_of_order, self.late, self.duplicates, self.malformed))


NO_ANOMALIES = AnomalyConfig()
# What `riskctl produce --anomalies` turns on: a little of everything, enough to see every DLQ reason.
REALISTIC = AnomalyConfig(event_time_skew_s=2.0, out_of_order=0.02, late=0.002, duplicates=0.005, malformed=0.002)


def corrupt(event: Mapping[str, Any], kind: str, variant: str, rng: random.Random) -> tuple[bytes, str, str]:
    """A broken copy of ``event``: (message bytes, new event id, the reason contracts.validate gives it)."""
    bad = dict(event)
    bad["event_id"] = f"bad-{rng.getrandbits(64):016x}"
    amount = AMOUNT_FIELD[kind]
    if variant == "invalid_json":
        raw = encode_event(bad)
        return raw[: max(1, len(raw) // 2)], bad["event_id"], INVALID_JSON
    if variant == "nan_amount":  # what a careless json.dumps writes: NaN is not JSON
        bad[amount] = float("nan")
        return json.dumps(bad, allow_nan=True).encode(), bad["event_id"], INVALID_JSON
    if variant == "missing_field":
        name = rng.choice([n for n in CONTRACTS[kind].required if n != "event_id"])
        del bad[name]
        return encode_event(bad), bad["event_id"], f"missing:{name}"
    if variant == "wrong_type":
        bad[amount] = f"{bad[amount] / 100:.2f}"
        return encode_event(bad), bad["event_id"], f"type:{amount}"
    if variant == "negative_amount":
        bad[amount] = -abs(int(bad[amount])) - 1
        return encode_event(bad), bad["event_id"], f"range:{amount}"
    if variant == "far_future":
        bad["event_time"] = "2099" + str(bad["event_time"])[4:]
        return encode_event(bad), bad["event_id"], FUTURE_EVENT_TIME
    raise ValueError(f"unknown malformed variant {variant!r}")


def with_anomalies(events: Iterable[Event], cfg: AnomalyConfig, seed: int,
                   topics: Mapping[str, str] = DEFAULT_TOPICS) -> Iterator[ProducedEvent]:
    """Serialise ``events`` (event-time ordered) into messages, adding what ``cfg`` asks for."""
    rng = rng_for(seed, "anomalies")
    skew_ms = cfg.event_time_skew_s * 1000
    buffer: list[tuple[int, int, ProducedEvent]] = []
    seq = 0
    for t, kind, event in events:
        while buffer and buffer[0][0] <= t:
            yield heapq.heappop(buffer)[2]
        topic, key = topics[kind], event["customer_id"]
        if skew_ms:
            event = {**event, "event_time": iso_ms(t + round(rng.uniform(-skew_ms, skew_ms)))}
        value = encode_event(event)
        r = rng.random()
        if r < cfg.late:
            delay, anomaly = round((cfg.late_delay_s + rng.uniform(0, cfg.late_delay_s)) * 1000) + 1, "late"
        elif r < cfg.late + cfg.out_of_order:
            delay, anomaly = round(rng.uniform(0, cfg.max_disorder_s) * 1000) + 1, "out_of_order"
        else:
            delay, anomaly = 0, ""
        clean = ProducedEvent(topic, key, value, event["event_id"], kind, t, anomaly)
        pending = [(t + delay, clean)]
        if cfg.duplicates and rng.random() < cfg.duplicates:
            again = ProducedEvent(topic, key, value, event["event_id"], kind, t, "duplicate")
            pending.append((t + delay + round(rng.uniform(0, cfg.duplicate_delay_s) * 1000), again))
        if cfg.malformed and rng.random() < cfg.malformed:
            variant = rng.choice(MALFORMED_VARIANTS)
            raw, bad_id, reason = corrupt(event, kind, variant, rng)
            pending.append((t + delay, ProducedEvent(topic, key, raw, bad_id, kind, t, f"malformed:{variant}", reason)))
        for emit_at, message in pending:
            if emit_at <= t and not buffer:
                yield message
            else:
                seq += 1
                heapq.heappush(buffer, (emit_at, seq, message))
    while buffer:
        yield heapq.heappop(buffer)[2]
