"""A small Kafka consumer for tools and tests: group id, manual commits, batch polling, read_committed option."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from loanrisk.settings import KafkaSettings, get_settings


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """One message as read back."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    timestamp_ms: int


def consumer_config(kafka: KafkaSettings, group_id: str, *, read_committed: bool = False,
                    from_beginning: bool = True) -> dict[str, Any]:
    """librdkafka consumer settings: the platform's client configuration (where, how to log in), no auto-commit
    (the caller commits after processing)."""
    conf = kafka.client_config()
    conf.update({
        "group.id": group_id, "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "fetch.message.max.bytes": kafka.max_message_bytes + 1024,
    })
    return conf


class EventConsumer:
    """Reads batches from ``topics`` as consumer group ``group_id``; commit() stores what was read."""

    def __init__(self, topics: list[str], group_id: str, *, kafka: KafkaSettings | None = None,
                 read_committed: bool = False, from_beginning: bool = True,
                 overrides: dict[str, Any] | None = None):
        from confluent_kafka import Consumer

        conf = consumer_config(kafka or get_settings().kafka, group_id, read_committed=read_committed,
                               from_beginning=from_beginning)
        # End-of-partition events tell read_to_end where each partition ended (for read_committed, the last
        # stable offset: an open transaction's records are not waited for).
        conf["enable.partition.eof"] = True
        conf.update(overrides or {})
        self._consumer = Consumer(conf)
        self._topics = list(topics)
        self._consumer.subscribe(self._topics)
        self._uncommitted = False
        self._ended: set[tuple[str, int]] = set()

    def poll_batch(self, max_messages: int = 1000, timeout_s: float = 1.0) -> list[ConsumedRecord]:
        """Up to ``max_messages`` records, waiting at most ``timeout_s``; raises on a consumer error."""
        from confluent_kafka import KafkaError, KafkaException

        out: list[ConsumedRecord] = []
        for msg in self._consumer.consume(num_messages=max_messages, timeout=timeout_s):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._ended.add((msg.topic(), msg.partition()))  # type: ignore[arg-type]  # set on this event
                    continue
                raise KafkaException(err)
            key = msg.key()
            out.append(ConsumedRecord(msg.topic(), msg.partition(), msg.offset(),  # type: ignore[arg-type]  # set when no error
                                      key.decode() if key is not None else None, msg.value() or b"",
                                      msg.timestamp()[1]))
        self._uncommitted = self._uncommitted or bool(out)
        return out

    def read(self, expected: int, idle_timeout_s: float = 10.0, max_messages: int = 5000) -> list[ConsumedRecord]:
        """Poll until ``expected`` records arrived or nothing came for ``idle_timeout_s``."""
        records: list[ConsumedRecord] = []
        last = time.monotonic()
        while len(records) < expected and time.monotonic() - last < idle_timeout_s:
            batch = self.poll_batch(max_messages, timeout_s=1.0)
            if batch:
                records.extend(batch)
                last = time.monotonic()
        return records

    def read_to_end(self, timeout_s: float = 120.0, max_messages: int = 5000) -> list[ConsumedRecord]:
        """Every record up to the end each partition had when this consumer reached it.

        Returns as soon as every partition of the topics reported its end, so the caller waits for the
        broker, not for an idle timeout; raises TimeoutError naming the partitions that never got there.
        """
        meta = self._consumer.list_topics(timeout=30)
        partitions = {(t, p) for t in self._topics for p in meta.topics[t].partitions}
        records: list[ConsumedRecord] = []
        deadline = time.monotonic() + timeout_s
        while not partitions <= self._ended:
            if time.monotonic() > deadline:
                missing = sorted(partitions - self._ended)
                raise TimeoutError(f"partitions {missing} not read to their end within {timeout_s:.0f}s")
            records.extend(self.poll_batch(max_messages, timeout_s=1.0))
        return records

    def commit(self) -> None:
        """Synchronously commit the positions of everything returned so far."""
        if self._uncommitted:
            self._consumer.commit(asynchronous=False)
            self._uncommitted = False

    def close(self) -> None:
        """Leave the group and release the client (uncommitted reads are re-delivered to the group)."""
        self._consumer.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
