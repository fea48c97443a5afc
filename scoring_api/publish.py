"""The optional copy of a scored application to the loan-applications topic, so the stream scores the same record.

The message is what every producer of ours sends (ingestion/wire.py): the event as compact JSON, keyed by
the contract's key (``customer_id``), with the client's own ``event_id``, so the stream's de-duplication
keeps one row however often it arrives. The producer's settings are ingestion/producer.py's (security,
acks=all, idempotence, compression); unlike a replay, each message waits for its delivery report, so a
reply says ``published`` only once the broker has the message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from contracts.events import LOAN_APPLICATION
from ingestion.producer import confluent_config, librdkafka_log
from ingestion.wire import encode_event
from loanrisk.errors import LoanRiskError
from loanrisk.settings import KafkaSettings


class PublishFailed(LoanRiskError):
    """The broker did not confirm the message in time, or refused it."""


class Publisher(Protocol):
    """Sends messages and returns once the broker has them, or why not."""

    def publish_many(self, topic: str, messages: Sequence[tuple[str, bytes]], timeout_s: float) -> list[str | None]:
        """Send (key, value) messages to ``topic``; per message None once delivered, else why it was not."""

    def close(self) -> None:
        """Deliver what is queued and release the client."""


def application_message(event: Mapping[str, Any]) -> tuple[str, bytes]:
    """(key, value) of a loan application as the stream reads it."""
    return str(event[LOAN_APPLICATION.key]), encode_event(event)


class KafkaPublisher:
    """A confluent-kafka producer with the platform's settings, created on first use, waiting for each delivery."""

    def __init__(self, kafka: KafkaSettings, delivery_timeout_s: float) -> None:
        self._conf = confluent_config(kafka)
        # Report every delivery (the replay producer reports failures only) and give up on a message once
        # no reply could still use it; a short linger, as a waiting request is the only thing in the batch.
        self._conf.update({"delivery.report.only.error": False, "linger.ms": 2,
                           "delivery.timeout.ms": max(1000, int(delivery_timeout_s * 1000))})
        self._producer: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def _started(self) -> Any:
        with self._lock:
            if self._producer is None:
                from confluent_kafka import Producer
                self._producer = Producer(self._conf, logger=librdkafka_log)
                self._poller = threading.Thread(target=self._poll, name="api-publisher", daemon=True)
                self._poller.start()
            return self._producer

    def _poll(self) -> None:
        """Serve delivery reports while the publisher is open."""
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def publish_many(self, topic: str, messages: Sequence[tuple[str, bytes]], timeout_s: float) -> list[str | None]:
        from confluent_kafka import KafkaException

        producer = self._started()
        deadline = time.monotonic() + max(timeout_s, 0.0)
        reports: list[threading.Event] = []
        outcome: list[str | None] = [None] * len(messages)

        def report(index: int, done: threading.Event) -> Callable[[Any, Any], None]:
            def delivered(err: Any, _msg: Any) -> None:
                if err is not None:
                    outcome[index] = f"{topic}: {err.str() if hasattr(err, 'str') else err}"
                done.set()
            return delivered

        for index, (key, value) in enumerate(messages):
            done = threading.Event()
            reports.append(done)
            try:
                producer.produce(topic, value, key.encode(), on_delivery=report(index, done))
            except (BufferError, KafkaException) as exc:
                outcome[index] = f"{topic}: not queued: {exc}"
                done.set()
        for index, done in enumerate(reports):
            if not done.wait(max(deadline - time.monotonic(), 0.0)):
                outcome[index] = (f"{topic}: no delivery report within {timeout_s:.1f}s (is Kafka at "
                                  f"{self._conf.get('bootstrap.servers')} up?)")
        return outcome

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=2)
        if self._producer is not None:
            self._producer.flush(5)
