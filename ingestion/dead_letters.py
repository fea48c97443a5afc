"""Dead letters: list them from the lake, fetch their original messages from Kafka, re-send corrected ones.

The lake keeps each dead letter's reason and a PII-redacted payload; the original message stays in
its Kafka topic at (source_topic, source_partition, source_offset), so a correction starts from the
original. A re-sent event is validated against its contract first, and goes back to its own topic
with its original key; the job's event-id deduplication drops a correction sent twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from contracts.events import INPUT_EVENTS
from contracts.validate import parse_json, validate_event
from loanrisk.errors import LoanRiskError
from loanrisk.settings import Settings

CONTRACTS = {c.name: c for c in INPUT_EVENTS}
DEAD_LETTER_COLUMNS = ("dlq_id", "source_topic", "source_partition", "source_offset", "reason", "payload",
                       "payload_bytes", "received_at")


class DeadLetterError(LoanRiskError):
    """A dead-letter request that cannot be carried out (unknown id, original gone from Kafka)."""


@dataclass
class RedriveReport:
    """What a redrive did: ids re-sent, ids refused with the rule they still break."""

    sent: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the CLI."""
        return f"re-sent {len(self.sent)}, refused {len(self.refused)}"


def list_dead_letters(settings: Settings, topic: str | None = None, reason: str | None = None,
                      ids: Iterable[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """Dead letters from the lake, newest first, optionally filtered by topic, reason prefix or ids."""
    from pyiceberg.expressions import AlwaysTrue, And, EqualTo, In, StartsWith

    from loanrisk.lake import catalog
    table = catalog(settings).load_table(f"{settings.catalog.namespace}.dead_letters")
    expr: Any = AlwaysTrue()
    if topic:
        expr = And(expr, EqualTo("source_topic", topic))
    if reason:
        expr = And(expr, StartsWith("reason", reason))
    wanted = list(ids or [])
    if wanted:
        expr = And(expr, In("dlq_id", wanted))
    frame = table.scan(row_filter=expr, selected_fields=DEAD_LETTER_COLUMNS).to_pandas()
    frame = frame.sort_values("received_at", ascending=False, kind="stable").reset_index(drop=True)
    return frame.head(limit) if limit else frame


def reason_counts(frame: pd.DataFrame) -> pd.Series:
    """Dead letters per (topic, reason), most frequent first."""
    return frame.groupby(["source_topic", "reason"]).size().sort_values(ascending=False)


def fetch_originals(settings: Settings, letters: pd.DataFrame, timeout_s: float = 10.0) -> dict[str, tuple[bytes | None, bytes]]:
    """The original (key, value) of each dead letter, read from its topic at its partition and offset."""
    from confluent_kafka import Consumer, TopicPartition

    from ingestion.consumer import consumer_config
    conf = consumer_config(settings.kafka, group_id="loanrisk-dlq-tool")
    out: dict[str, tuple[bytes | None, bytes]] = {}
    consumer = Consumer(conf)
    try:
        for row in letters.itertuples(index=False):
            tp = TopicPartition(row.source_topic, int(row.source_partition), int(row.source_offset))
            consumer.assign([tp])
            msgs = consumer.consume(num_messages=1, timeout=timeout_s)
            msg = next((m for m in msgs if m.error() is None and m.offset() == int(row.source_offset)), None)
            if msg is None:
                raise DeadLetterError(f"dead letter {row.dlq_id[:12]}: the original message "
                                      f"{row.source_topic}/{row.source_partition}@{row.source_offset} "
                                      "is no longer in Kafka (retention); correct it from its payload instead")
            out[row.dlq_id] = (msg.key(), msg.value() or b"")
    finally:
        consumer.close()
    return out


def export_originals(settings: Settings, letters: pd.DataFrame) -> list[dict[str, Any]]:
    """Correction templates: one record per dead letter with its reason and original event (to edit)."""
    originals = fetch_originals(settings, letters)
    records = []
    for row in letters.itertuples(index=False):
        _, value = originals[row.dlq_id]
        parsed = parse_json(value)
        records.append({"dlq_id": row.dlq_id, "source_topic": row.source_topic, "reason": row.reason,
                        "event": parsed if parsed is not None else value.decode("utf-8", "replace")})
    return records


def read_corrections(lines: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """Corrections from JSON lines ({"dlq_id": ..., "event": {...}}); a malformed line is one clear error."""
    out: dict[str, Mapping[str, Any]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DeadLetterError(f"corrections line {n}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or "dlq_id" not in record or not isinstance(record.get("event"), dict):
            raise DeadLetterError(f'corrections line {n}: expected {{"dlq_id": ..., "event": {{...}}}}')
        out[str(record["dlq_id"])] = record["event"]
    return out


def contract_kind(settings: Settings, topic: str) -> str:
    """The contract of a configured input topic (topic names come from settings, not from the contracts)."""
    t = settings.kafka.topics
    kinds = {t.applications: "loan_application", t.transactions: "transaction", t.repayments: "repayment"}
    if topic not in kinds:
        raise DeadLetterError(f"topic {topic!r} is not one of the configured input topics {sorted(kinds)}")
    return kinds[topic]


def redrive(settings: Settings, letters: pd.DataFrame, corrections: Mapping[str, Mapping[str, Any]] | None = None,
            dry_run: bool = False) -> RedriveReport:
    """Re-send dead letters to their topics: the correction when given, else the original re-validated.

    Without a correction, an original that still breaks its contract is refused (useful after a
    contract fix); nothing invalid is ever re-sent.
    """
    from ingestion.producer import make_producer
    report = RedriveReport()
    originals = fetch_originals(settings, letters)
    outgoing: list[tuple[str, bytes | None, bytes]] = []
    for row in letters.itertuples(index=False):
        key, original = originals[row.dlq_id]
        event: Any = corrections.get(row.dlq_id) if corrections else None
        value = json.dumps(event, separators=(",", ":")).encode() if event is not None else original
        broken = validate_event(value, CONTRACTS[contract_kind(settings, row.source_topic)],
                                future_tolerance=settings.flink.future_tolerance)
        if broken:
            report.refused[row.dlq_id] = broken
            continue
        outgoing.append((row.source_topic, key, value))
        report.sent.append(row.dlq_id)
    if outgoing and not dry_run:
        producer = make_producer(kafka=settings.kafka)
        for topic, key, value in outgoing:
            producer.send(topic, key.decode() if key is not None else None, value)
        if producer.flush(60) != 0:
            raise DeadLetterError("some corrected events were not acknowledged by Kafka; nothing was lost from "
                                  "the lake, run the redrive again (the job drops repeated event ids)")
    return report
