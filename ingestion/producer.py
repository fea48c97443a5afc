"""Kafka producers behind one small interface (confluent-kafka main path, kafka-python for comparison) and the send loop.

Both: keyed by customer_id (one customer's events stay in one partition, in order), batched,
compressed (lz4 / zstd), acks=all with idempotence, delivery errors counted, messages over
``settings.kafka.max_message_bytes`` refused before sending with a clear error. A finite replay ends
with watermark heartbeats (:class:`Heartbeats`, contracts/heartbeat.py), one per partition.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from contracts.heartbeat import HEARTBEAT_KEY, closing_time_ms, encode_heartbeat, within_tolerance
from ingestion.pacing import TokenBucket
from ingestion.timeutil import iso_ms
from ingestion.wire import ProducedEvent
from loanrisk.errors import LoanRiskError
from loanrisk.settings import FlinkSettings, KafkaSettings, Settings, get_settings

log = logging.getLogger(__name__)
# librdkafka's own log lines (connection retries, ...) go here: silent unless the application configures logging;
# failures that matter surface as KafkaUnavailable or as counted delivery errors.
librdkafka_log = logging.getLogger("ingestion.librdkafka")
librdkafka_log.addHandler(logging.NullHandler())
# lz4 is the cheapest of librdkafka's codecs on CPU; kafka-python's lz4 needs the `lz4`
# package (not in the platform lock), so it uses zstd (`zstandard` is in the lock). Flink's Kafka source
# reads both.
CONFLUENT_COMPRESSION = "lz4"
KAFKA_PYTHON_COMPRESSION = "zstd"
RECORD_OVERHEAD_BYTES = 1024  # room for record/batch headers above the payload limit
IMPLEMENTATIONS = ("confluent", "kafka-python")


class KafkaUnavailable(LoanRiskError):
    """The broker cannot be reached."""


class MessageTooLarge(LoanRiskError):
    """A message is larger than settings.kafka.max_message_bytes."""


@dataclass
class DeliveryStats:
    """What happened to the messages handed to a producer."""

    enqueued: int = 0
    delivered: int = 0
    failed: int = 0
    refused_too_large: int = 0
    bytes_enqueued: int = 0
    errors: list[str] = field(default_factory=list)

    def record_error(self, message: str) -> None:
        """Count a delivery failure and keep its first few distinct messages for the report."""
        self.failed += 1
        if len(self.errors) < 10 and message not in self.errors:
            self.errors.append(message)

    @property
    def pending(self) -> int:
        """Messages handed over whose delivery is not yet known."""
        return self.enqueued - self.delivered - self.failed


class EventProducer(ABC):
    """The small interface every implementation offers."""

    name: str = "abstract"

    def __init__(self, max_message_bytes: int):
        self.max_message_bytes = max_message_bytes
        self.stats = DeliveryStats()

    def refuse_if_too_large(self, topic: str, key: bytes | None, value: bytes) -> bool:
        """True (and counted, logged) when the message exceeds the configured maximum."""
        size = len(value) + (len(key) if key else 0)
        if size <= self.max_message_bytes:
            return False
        self.stats.refused_too_large += 1
        log.error("%s", MessageTooLarge(
            f"message to {topic} is {size} bytes, over kafka.max_message_bytes={self.max_message_bytes} "
            "(LOANRISK_KAFKA__MAX_MESSAGE_BYTES); refused, not sent"))
        return True

    def send(self, topic: str, key: str | None, value: bytes, *, partition: int | None = None,
             timestamp_ms: int | None = None) -> bool:
        """Queue one message; False when refused (too large). Delivery is reported asynchronously.

        Without ``partition`` the key picks it; without ``timestamp_ms`` the client stamps the send time.
        """
        key_bytes = key.encode() if key is not None else None
        if self.refuse_if_too_large(topic, key_bytes, value):
            return False
        self.stats.enqueued += 1
        self.stats.bytes_enqueued += len(value)
        self._send(topic, key_bytes, value, partition, timestamp_ms)
        return True

    @abstractmethod
    def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
              timestamp_ms: int | None = None) -> None: ...

    @abstractmethod
    def partitions(self, topic: str) -> list[int]:
        """The partition ids of ``topic`` (empty when the cluster does not know the topic)."""

    @abstractmethod
    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery reports."""

    @abstractmethod
    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still pending."""

    @abstractmethod
    def check_connection(self, timeout_s: float = 5.0) -> None:
        """Raise KafkaUnavailable when the cluster does not answer."""

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush and release the client."""
        self.flush(timeout_s)


class NullEventProducer(EventProducer):
    """Delivers nothing anywhere, instantly: for dry runs and for measuring a source's own rate."""

    name = "null"

    def __init__(self, max_message_bytes: int, partitions_per_topic: int = 1):
        super().__init__(max_message_bytes)
        self.partitions_per_topic = partitions_per_topic

    def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
              timestamp_ms: int | None = None) -> None:
        self.stats.delivered += 1

    def partitions(self, topic: str) -> list[int]:
        return list(range(self.partitions_per_topic))

    def poll(self, timeout_s: float = 0.0) -> None:
        return None

    def flush(self, timeout_s: float = 30.0) -> int:
        return self.stats.pending

    def check_connection(self, timeout_s: float = 5.0) -> None:
        return None


def confluent_config(kafka: KafkaSettings) -> dict[str, Any]:
    """librdkafka producer settings: the platform's client configuration (where, how to log in), then
    reliability, batching and compression."""
    conf = kafka.client_config()
    conf.update({
        "acks": "all", "enable.idempotence": True, "compression.type": CONFLUENT_COMPRESSION,
        "linger.ms": 20, "batch.size": 1_000_000, "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000, "queue.buffering.max.kbytes": 512 * 1024,
        "message.max.bytes": kafka.max_message_bytes + RECORD_OVERHEAD_BYTES,
        "delivery.timeout.ms": 120_000,
        # Delivery reports for failures only: a Python callback per success costs much of the throughput;
        # successes are counted as handed over minus failed minus still in flight.
        "delivery.report.only.error": True,
    })
    return conf


class ConfluentEventProducer(EventProducer):
    """confluent-kafka (librdkafka): the main path."""

    name = "confluent-kafka"

    def __init__(self, conf: dict[str, Any], max_message_bytes: int):
        from confluent_kafka import Producer

        super().__init__(max_message_bytes)
        if "transactional.id" in conf:  # librdkafka refuses a delivery timeout longer than the transaction's
            conf = {"transaction.timeout.ms": max(int(conf.get("delivery.timeout.ms", 0)), 60_000), **conf}
        self.conf = dict(conf)
        self._reports_successes = not conf.get("delivery.report.only.error", False)
        self._producer = Producer({**conf, "on_delivery": self._on_delivery}, logger=librdkafka_log)
        self._since_poll = 0
        self._transactions_ready = False

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.record_error(f"{msg.topic()}: {err.str()}")

    def _count_successes(self) -> None:
        """Without success reports, delivered = handed over - failed - still queued or in flight."""
        if not self._reports_successes:
            self.stats.delivered = self.stats.enqueued - self.stats.failed - len(self._producer)

    def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
              timestamp_ms: int | None = None) -> None:
        from confluent_kafka import KafkaException

        while True:
            try:
                if partition is None and timestamp_ms is None:
                    self._producer.produce(topic, value, key)
                else:  # librdkafka's "unassigned" and "now" are -1 and 0
                    self._producer.produce(topic, value, key, partition=-1 if partition is None else partition,
                                           timestamp=timestamp_ms or 0)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.05)
            except KafkaException as exc:  # refused by librdkafka itself (e.g. size after headers): counted failed
                self.stats.record_error(f"{topic}: {exc.args[0].str() if exc.args else exc}")
                break
        self._since_poll += 1
        if self._since_poll >= 1000:
            self._producer.poll(0)
            self._since_poll = 0

    def begin_transaction(self, timeout_s: float = 30.0) -> None:
        """Start a transaction (the config needs a ``transactional.id``): what is sent until
        :meth:`commit_transaction` reaches read_committed consumers all at once, or never."""
        if not self._transactions_ready:
            self._producer.init_transactions(timeout_s)
            self._transactions_ready = True
        self._producer.begin_transaction()

    def commit_transaction(self, timeout_s: float = 60.0) -> None:
        """Commit the open transaction (flushing what is still queued first)."""
        self._producer.commit_transaction(timeout_s)
        self._count_successes()

    def poll(self, timeout_s: float = 0.0) -> None:
        self._producer.poll(timeout_s)
        self._count_successes()

    def flush(self, timeout_s: float = 30.0) -> int:
        remaining = int(self._producer.flush(timeout_s))
        self._count_successes()
        return remaining

    def partitions(self, topic: str) -> list[int]:
        from confluent_kafka import KafkaException

        try:
            meta = self._producer.list_topics(topic, timeout=10.0).topics.get(topic)
        except KafkaException:
            return []
        return sorted(meta.partitions) if meta is not None and meta.error is None else []

    def check_connection(self, timeout_s: float = 5.0) -> None:
        from confluent_kafka import KafkaException

        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaUnavailable(
                f"cannot reach Kafka at {self.conf.get('bootstrap.servers')} ({exc.args[0].str() if exc.args else exc}); "
                "start the stack or set LOANRISK_KAFKA__PORT / LOANRISK_KAFKA__BOOTSTRAP_SERVERS") from None


def kafka_python_config(kafka: KafkaSettings) -> dict[str, Any]:
    """The same settings in kafka-python's vocabulary."""
    rd = kafka.client_config()
    names = {"security.protocol": "security_protocol", "sasl.mechanism": "sasl_mechanism",
             "sasl.username": "sasl_plain_username", "sasl.password": "sasl_plain_password",
             "ssl.ca.location": "ssl_cafile", "ssl.certificate.location": "ssl_certfile",
             "ssl.key.location": "ssl_keyfile"}
    conf: dict[str, Any] = {names[k]: v for k, v in rd.items() if k in names}
    conf.update({
        "bootstrap_servers": rd["bootstrap.servers"].split(","),
        "acks": "all", "enable_idempotence": True, "compression_type": KAFKA_PYTHON_COMPRESSION,
        "linger_ms": 20, "batch_size": 512 * 1024,
        "max_request_size": kafka.max_message_bytes + RECORD_OVERHEAD_BYTES,
    })
    return conf


class KafkaPythonEventProducer(EventProducer):
    """kafka-python (pure Python): kept for the throughput comparison."""

    name = "kafka-python"

    def __init__(self, conf: dict[str, Any], max_message_bytes: int):
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        super().__init__(max_message_bytes)
        self.conf = conf
        try:
            self._producer = KafkaProducer(**conf)
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot reach Kafka at {','.join(conf['bootstrap_servers'])} ({exc}); "
                                   "start the stack or set LOANRISK_KAFKA__PORT") from None
        self._lock = threading.Lock()

    def _ok(self, _metadata: Any) -> None:
        with self._lock:
            self.stats.delivered += 1

    def _err(self, exc: BaseException) -> None:
        with self._lock:
            self.stats.record_error(f"{type(exc).__name__}: {exc}")

    def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
              timestamp_ms: int | None = None) -> None:
        from kafka.errors import KafkaError

        try:
            self._producer.send(topic, value=value, key=key, partition=partition, timestamp_ms=timestamp_ms
                                ).add_callback(self._ok).add_errback(self._err)
        except KafkaError as exc:  # refused before queueing (e.g. buffer full past max_block_ms)
            self._err(exc)

    def partitions(self, topic: str) -> list[int]:
        from kafka.errors import KafkaError

        try:
            return sorted(self._producer.partitions_for(topic) or ())
        except KafkaError:
            return []

    def poll(self, timeout_s: float = 0.0) -> None:
        if timeout_s:
            time.sleep(timeout_s)  # delivery callbacks run on the client's I/O thread

    def flush(self, timeout_s: float = 30.0) -> int:
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            pass
        return self.stats.pending

    def check_connection(self, timeout_s: float = 5.0) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        keys = ("bootstrap_servers", "security_protocol", "sasl_mechanism", "sasl_plain_username",
                "sasl_plain_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile")
        timeout_ms = int(timeout_s * 1000)
        try:
            KafkaAdminClient(**{k: v for k, v in self.conf.items() if k in keys}, request_timeout_ms=timeout_ms,
                             bootstrap_timeout_ms=timeout_ms).close()
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot reach Kafka at {','.join(self.conf['bootstrap_servers'])} ({exc}); "
                                   "start the stack or set LOANRISK_KAFKA__PORT") from None

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        self._producer.close(timeout=timeout_s)


def make_producer(impl: str = "confluent", *, kafka: KafkaSettings | None = None,
                  overrides: dict[str, Any] | None = None) -> EventProducer:
    """A producer configured from ``settings.kafka`` (or ``kafka``)."""
    kafka = kafka or get_settings().kafka
    if impl == "confluent":
        conf = confluent_config(kafka)
        conf.update(overrides or {})
        return ConfluentEventProducer(conf, kafka.max_message_bytes)
    if impl == "kafka-python":
        conf = kafka_python_config(kafka)
        conf.update(overrides or {})
        return KafkaPythonEventProducer(conf, kafka.max_message_bytes)
    raise ValueError(f"unknown producer implementation {impl!r}; choose one of {', '.join(IMPLEMENTATIONS)}")


# Under the job's source idle timeout (flink.source_idle_timeout_s, at least 5 s): while heartbeats come
# this often no partition goes idle, so no idle status can overtake the watermark the Python scorer holds
# back until its bundle is done (docs/RELIABILITY.md, Limits), however far behind the job is.
LULL_HEARTBEAT_INTERVAL_S = 2.0


@dataclass(frozen=True)
class HeartbeatRound:
    """One heartbeat to every partition of each input topic, all at one event time."""

    event_time_ms: int
    messages: int
    capped: bool  # cut to the Kafka timestamp plus the job's future tolerance

    def line(self) -> str:
        """``heartbeats=6 at 2019-03-01T00:05:00.000Z`` (with a note when cut to the tolerance)."""
        note = " (cut to now + flink.future_tolerance_s)" if self.capped else ""
        return f"heartbeats={self.messages} at {iso_ms(self.event_time_ms)}{note}"


class Heartbeats:
    """Watermark heartbeats (contracts/heartbeat.py) to every partition of the input topics, through one producer.

    :meth:`close` sends the round that closes every window holding a replay's events. :meth:`again` sends
    the next round 1 ms later: a round must move the watermark, because a source that went idle and
    came back does not emit a watermark it already emitted. :meth:`keep_sending` repeats :meth:`again`
    from a thread, for as long as the job may still be catching up. The event times come from
    ``flink`` (window lengths, watermark delay, future tolerance): the job's settings.
    """

    def __init__(self, producer: EventProducer, topics: Sequence[str], flink: FlinkSettings,
                 wall_clock: Callable[[], float] = time.time):
        self.producer, self.topics, self.wall_clock = producer, tuple(topics), wall_clock
        self.window_lengths_ms = (flink.behaviour_window_days * 86_400_000, flink.window_minutes * 60_000)
        self.watermark_delay_ms = flink.watermark_delay_s * 1000
        self.future_tolerance_ms = flink.future_tolerance_s * 1000
        self.target_ms: int | None = None
        self.sent = 0
        self._partitions: dict[str, list[int]] = {}

    def close(self, last_event_ms: int) -> HeartbeatRound:
        """Send the round that closes every window holding an event at or before ``last_event_ms``."""
        self.target_ms = closing_time_ms(last_event_ms, self.window_lengths_ms, self.watermark_delay_ms)
        return self._round()

    def again(self) -> HeartbeatRound:
        """Send the next round, 1 ms after the last one's target."""
        if self.target_ms is None:
            raise ValueError("no closing heartbeat sent yet: call close(last_event_ms) first")
        self.target_ms += 1
        return self._round()

    def keep_sending(self, stop: threading.Event, every_s: float = LULL_HEARTBEAT_INTERVAL_S) -> threading.Thread:
        """A started daemon thread sending :meth:`again` every ``every_s`` seconds until ``stop`` is set."""
        def run() -> None:
            while not stop.wait(every_s):
                self.again()
                self.producer.poll(0)

        thread = threading.Thread(target=run, name="heartbeats", daemon=True)
        thread.start()
        return thread

    def _round(self) -> HeartbeatRound:
        assert self.target_ms is not None
        now_ms = int(self.wall_clock() * 1000)
        event_time_ms, capped = within_tolerance(self.target_ms, now_ms, self.future_tolerance_ms)
        if capped and self.sent == 0:
            log.warning("the closing heartbeat's event time %s is later than now + flink.future_tolerance_s; "
                        "sent at %s instead, so windows ending after that (less the watermark delay) close "
                        "only when later events arrive", iso_ms(self.target_ms), iso_ms(event_time_ms))
        value = encode_heartbeat(event_time_ms)
        messages = 0
        for topic in self.topics:
            if topic not in self._partitions:
                self._partitions[topic] = self.producer.partitions(topic)
                if not self._partitions[topic]:
                    log.warning("no partitions found for topic %s: it gets no heartbeat", topic)
            for partition in self._partitions[topic]:
                # The explicit Kafka timestamp is the "now" the job checks the future tolerance against.
                messages += self.producer.send(topic, HEARTBEAT_KEY, value, partition=partition,
                                               timestamp_ms=now_ms)
        self.sent += messages
        return HeartbeatRound(event_time_ms, messages, capped)


def heartbeats_for(producer: EventProducer, settings: Settings | None = None) -> Heartbeats:
    """Heartbeats to the input topics of ``settings`` (default: the platform's), timed by its flink settings."""
    settings = settings or get_settings()
    t = settings.kafka.topics
    return Heartbeats(producer, (t.applications, t.transactions, t.repayments), settings.flink)


@dataclass
class ProduceSummary:
    """The outcome of one send loop: its events, and the closing heartbeats when it sent them."""

    handed: int
    delivered: int
    failed: int
    refused: int
    pending: int
    bytes: int
    elapsed_s: float
    interrupted: bool
    last_event_ms: int | None = None
    heartbeat: HeartbeatRound | None = None
    heartbeats_undelivered: int = 0

    @property
    def rate(self) -> float:
        """Messages handed to the producer per second of the run."""
        return self.handed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        """The closing one-line summary."""
        note = " (interrupted, flushed)" if self.interrupted else ""
        beat = f" {self.heartbeat.line()}" if self.heartbeat else ""
        lost = f" heartbeats_undelivered={self.heartbeats_undelivered}" if self.heartbeats_undelivered else ""
        return (f"sent={self.delivered} failed={self.failed + self.pending} refused_too_large={self.refused} "
                f"rate={self.rate:,.0f} events/s {self.bytes / max(self.elapsed_s, 1e-9) / 1e6:.2f} MB/s "
                f"in {self.elapsed_s:.1f}s{note}{beat}{lost}")


@contextmanager
def sigint_stops(stop: threading.Event) -> Iterator[None]:
    """While inside: the first Ctrl-C sets ``stop`` (the loop then flushes cleanly); a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def produce_events(events: Iterable[ProducedEvent], producer: EventProducer, *, count: int | None = None,
                   duration_s: float | None = None, rate: float | None = None,
                   stop: threading.Event | None = None,
                   on_progress: Callable[[int, DeliveryStats], None] | None = None,
                   progress_every_s: float = 0.2, flush_timeout_s: float = 60.0,
                   heartbeats: Heartbeats | None = None,
                   clock: Callable[[], float] = time.monotonic) -> ProduceSummary:
    """Send ``events`` until exhausted, ``count`` sent, ``duration_s`` elapsed or ``stop`` set; then flush.

    ``rate`` adds a token bucket here (for sources that are not paced themselves). Ctrl-C sets
    ``stop`` when this runs in the main thread. With ``heartbeats``, the run (interrupted or not) ends
    with their closing round, timed from the latest event time among the valid events sent, after
    every event is flushed; the summary's counts are the events' only.
    """
    stop = stop or threading.Event()
    bucket = TokenBucket(rate, clock=clock) if rate else None
    handed = 0
    last_event_ms: int | None = None
    start = clock()
    next_progress = start + progress_every_s
    with sigint_stops(stop):
        for event in events:
            if stop.is_set() or (count is not None and handed >= count):
                break
            now = clock()
            if duration_s is not None and now - start >= duration_s:
                break
            if bucket is not None:
                bucket.acquire()
            producer.send(event.topic, event.key, event.value_bytes)
            handed += 1
            # Malformed messages are dead-lettered: their windows are not the stream's.
            if event.expected_reason is None and (last_event_ms is None or event.event_time_ms > last_event_ms):
                last_event_ms = event.event_time_ms
            if on_progress is not None and now >= next_progress:
                producer.poll(0)
                on_progress(handed, producer.stats)
                next_progress = now + progress_every_s
        interrupted = stop.is_set()
        pending = producer.flush(flush_timeout_s)
    elapsed = clock() - start
    if on_progress is not None:
        on_progress(handed, producer.stats)
    s = producer.stats
    summary = ProduceSummary(handed=handed, delivered=s.delivered, failed=s.failed, refused=s.refused_too_large,
                             pending=pending, bytes=s.bytes_enqueued, elapsed_s=elapsed, interrupted=interrupted,
                             last_event_ms=last_event_ms)
    if heartbeats is not None and last_event_ms is not None:
        failed_before = s.failed
        summary.heartbeat = heartbeats.close(last_event_ms)
        summary.heartbeats_undelivered = max(producer.flush(flush_timeout_s) - pending, 0) + s.failed - failed_before
    return summary
