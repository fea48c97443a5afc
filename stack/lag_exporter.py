"""Pipeline exporter for Prometheus: Kafka consumer lag of the risk job, and how long its windows wait to close.

Why an exporter and not only Flink's own metrics: the Flink Kafka source commits its offsets to the
consumer group on every completed checkpoint, so ``end offset - committed offset`` is the backlog the
job has not durably processed. It is measured from outside the job, so it keeps growing (and the alert
keeps firing) when the job is down, restarting or stuck in failing checkpoints; Flink's
``pendingRecords`` disappears exactly then. Run: ``python -m stack.lag_exporter --state DIR``.

Window freshness (:class:`WindowFreshnessCollector`) is read from the PostgreSQL serving tables, for
the same reason: it is what readers see, whatever state the job is in.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from loanrisk.settings import Settings, get_settings

log = logging.getLogger("stack.lag_exporter")

# librdkafka's OFFSET_INVALID: the group has committed nothing for the partition yet.
NO_COMMIT = -1001


def partition_lag(committed: int, low: int, high: int) -> int:
    """Records of one partition the group has not committed: from its commit (or the log start) to the end."""
    start = committed if committed >= 0 else low
    return max(high - max(start, low), 0)


def unread_deleted(committed: int, low: int) -> int:
    """Records of one partition the broker's retention deleted past the group's commit. The job resumes from that
    commit (or its checkpoint's equal offsets), finds them gone and starts at the log start (its sources'
    ``auto.offset.reset`` is earliest): it never reads them, and nothing in the job says so."""
    return max(low - committed, 0) if committed >= 0 else 0


class ConsumerLagCollector(Collector):
    """Reads committed offsets and watermarks on every scrape (no background polling)."""

    def __init__(self, settings: Settings, timeout_s: float = 5.0) -> None:
        from confluent_kafka import Consumer
        self.group = settings.flink.consumer_group
        self.topics = [settings.kafka.topics.applications, settings.kafka.topics.transactions,
                       settings.kafka.topics.repayments]
        self.timeout_s = timeout_s
        self.retention_s = settings.kafka.topics.retention_ms() / 1000
        self.errors = 0
        self._lock = threading.Lock()
        # Never subscribes, so it never joins the group: it only reads the group's committed offsets.
        config = {**settings.kafka.client_config(), "group.id": self.group, "enable.auto.commit": False,
                  "logger": logging.getLogger("stack.lag_exporter.librdkafka")}
        self._consumer = Consumer({**config, "client.id": "loanrisk-lag-exporter"})
        # Reads the first record the group has not committed, for its timestamp; assigned, never subscribed, never
        # committing; small fetches, as only that record is wanted. An offset deleted meanwhile is an error, not a
        # jump to a younger record.
        self._peek = Consumer({**config, "client.id": "loanrisk-lag-exporter-peek", "enable.auto.offset.store": False,
                               "auto.offset.reset": "error",
                               "max.partition.fetch.bytes": 65_536,
                               "queued.max.messages.kbytes": 1024})

    def _partitions(self) -> list:
        from confluent_kafka import TopicPartition
        meta = self._consumer.list_topics(timeout=self.timeout_s)
        return [TopicPartition(t, p) for t in self.topics if t in meta.topics for p in sorted(meta.topics[t].partitions)]

    def _first_unread_times(self, firsts: dict[tuple[str, int], int]) -> dict[tuple[str, int], float]:
        """The timestamp (epoch seconds) of the record at each partition's first unread offset, for those read
        within the timeout (a partition whose record is not there is left out)."""
        from confluent_kafka import TopicPartition
        if not firsts:
            return {}
        self._peek.assign([TopicPartition(topic, p, offset) for (topic, p), offset in firsts.items()])
        found: dict[tuple[str, int], float] = {}
        deadline = time.monotonic() + min(self.timeout_s, 2.0)  # within a scrape's time
        try:
            while len(found) < len(firsts) and time.monotonic() < deadline:
                msg = self._peek.poll(0.2)
                if msg is None or msg.error():
                    continue
                key = (msg.topic(), msg.partition())
                if key in firsts and key not in found:
                    found[key] = msg.timestamp()[1] / 1000
        finally:
            self._peek.unassign()
        return found

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """One scrape: per partition the lag, committed, start and end offsets, the records deleted unread and the
        age of the oldest unread one; the topics' retention; whether Kafka answered."""
        lag = GaugeMetricFamily("loanrisk_kafka_consumer_lag", "Records not yet committed by the consumer group",
                                labels=["group", "topic", "partition"])
        committed_g = GaugeMetricFamily("loanrisk_kafka_committed_offset", "Offset the consumer group committed",
                                        labels=["group", "topic", "partition"])
        start = GaugeMetricFamily("loanrisk_kafka_log_start_offset", "First offset the partition still holds",
                                  labels=["topic", "partition"])
        end = GaugeMetricFamily("loanrisk_kafka_log_end_offset", "High watermark of the partition",
                                labels=["topic", "partition"])
        deleted = GaugeMetricFamily("loanrisk_kafka_unread_deleted", "Records the topic's retention deleted after the "
                                    "group's last commit, which the job will never read", labels=["group", "topic",
                                                                                                  "partition"])
        age = GaugeMetricFamily("loanrisk_kafka_oldest_unread_age_seconds", "Age (by its timestamp) of the first "
                                "record the group has not committed; 0 with no lag", labels=["group", "topic",
                                                                                             "partition"])
        retention = GaugeMetricFamily("loanrisk_kafka_retention_seconds", "The retention the platform sets on its "
                                      "topics (kafka.topics.retention_hours)", labels=["topic"])
        up = GaugeMetricFamily("loanrisk_kafka_up", "1 when the last scrape could read Kafka")
        with self._lock:
            try:
                parts = self._partitions()
                committed = {(tp.topic, tp.partition): tp.offset
                             for tp in self._consumer.committed(parts, timeout=self.timeout_s)}
                offsets = {(tp.topic, tp.partition): self._consumer.get_watermark_offsets(
                    tp, timeout=self.timeout_s, cached=False) for tp in parts}
                done = {key: committed.get(key, NO_COMMIT) for key in offsets}
                lags = {key: partition_lag(done[key], low, high) for key, (low, high) in offsets.items()}
                firsts = {key: max(done[key], low) for key, (low, _) in offsets.items() if lags[key] > 0}
                stamped = self._first_unread_times(firsts)
                now = time.time()
                for (topic, p), (low, high) in offsets.items():
                    labels = [topic, str(p)]
                    lag.add_metric([self.group, *labels], lags[(topic, p)])
                    committed_g.add_metric([self.group, *labels], max(done[(topic, p)], 0))
                    start.add_metric(labels, low)
                    end.add_metric(labels, high)
                    deleted.add_metric([self.group, *labels], unread_deleted(done[(topic, p)], low))
                    if (topic, p) in stamped or (topic, p) not in firsts:
                        age.add_metric([self.group, *labels], max(now - stamped.get((topic, p), now), 0))
                for topic in self.topics:
                    retention.add_metric([topic], self.retention_s)
                up.add_metric([], 1)
            except Exception:  # noqa: BLE001 - a scrape must answer; Kafka being away is a metric
                self.errors += 1
                up.add_metric([], 0)
        errors = CounterMetricFamily("loanrisk_lag_exporter_errors", "Scrapes that could not read Kafka")
        errors.add_metric([], self.errors)
        yield from (lag, committed_g, start, end, deleted, age, retention, up, errors)


# Window freshness. Event time says nothing about staleness here (a replay's windows are years old the
# moment they close), so a window's age is wall time: how long the newest closed window has stood still
# while scored events beyond it wait for the next one to close. It rises while a window is legitimately
# open too (at most about its length under steady traffic), so the alert compares it with the window's
# length plus the watermark delay.


@dataclass(frozen=True)
class WindowEnds:
    """Event times (epoch seconds, None when the table is empty) read from the serving tables in one scrape."""

    newest_score: float | None
    risk_end: float | None
    risk_length_s: float | None
    behaviour_end: float | None


@dataclass(frozen=True)
class WindowClock:
    """What a table's age is measured from: its newest window end, and the wall time it was first seen waiting."""

    newest_end: float | None
    waiting_since: float


@dataclass(frozen=True)
class JobWindows:
    """The window lengths and watermark delay (seconds) of the job whose windows are measured."""

    watermark_delay_s: float
    risk_window_s: float
    behaviour_window_s: float


def job_windows(settings: Settings) -> JobWindows:
    """Those of the job reading as ``flink.consumer_group``, from the parameter file of its latest wanted
    submission (a job may run with other values than the stack's settings: the tests' compressed time, a
    demo); the settings' own when no such submission is recorded."""
    import json
    from pathlib import Path

    from jobs.sqlfiles import sql_string
    from stack.recovery import submissions
    for sub in sorted(submissions(settings), key=lambda sub: sub.submitted_at, reverse=True):
        if not sub.wanted:
            continue
        try:
            sql = json.loads(Path(sub.params).read_text())["sql"]
            if sql.get("consumer_group") == sql_string(settings.flink.consumer_group):
                return JobWindows(float(sql["watermark_delay_s"]), float(sql["window_minutes"]) * 60.0,
                                  float(sql["behaviour_window_days"]) * 86_400.0)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a file being replaced, or of another version: not this job's
    f = settings.flink
    return JobWindows(float(f.watermark_delay_s), f.window_minutes * 60.0, f.behaviour_window_days * 86_400.0)


def window_age(previous: WindowClock | None, newest_end: float | None, newest_score: float | None,
               now: float) -> tuple[float, WindowClock | None]:
    """(age in wall seconds, the clock for the next scrape) of one window table.

    Scores wait when the newest one is at or after the newest closed window's end (or no window has
    closed yet): its window is still open. The age counts from the first scrape that saw them waiting
    with this newest window end; it is 0 when nothing waits, and starts again when a window closes.
    """
    waiting = newest_score is not None and (newest_end is None or newest_score >= newest_end)
    if not waiting:
        return 0.0, None
    if previous is None or previous.newest_end != newest_end:
        previous = WindowClock(newest_end, now)
    return now - previous.waiting_since, previous


def read_window_ends(settings: Settings, timeout_s: float = 5.0) -> WindowEnds:
    """The newest score's event time and the newest closed windows' ends, from PostgreSQL (read-only role)."""
    import psycopg
    pg = settings.postgres

    def epoch(t: datetime | None) -> float | None:
        return t.timestamp() if t is not None else None

    # Not loanrisk.serving.serving_connection: a scrape must answer, so the connection gets a timeout.
    with psycopg.connect(pg.dsn(pg.serving_db, reader=True), connect_timeout=max(int(timeout_s), 1)) as conn:
        conn.execute(f"SET statement_timeout = {int(timeout_s * 1000)}")
        newest_score = conn.execute("SELECT max(trigger_time) FROM loan_scores_latest").fetchone()[0]
        risk = conn.execute("SELECT window_start, window_end FROM risk_by_window "
                            "ORDER BY window_start DESC LIMIT 1").fetchone()
        # TIMESTAMP without zone, written in UTC by the job: read it as UTC.
        behaviour = conn.execute("SELECT max(behaviour_as_of) AT TIME ZONE 'UTC' "
                                 "FROM customer_behaviour_windows").fetchone()[0]
    return WindowEnds(newest_score=epoch(newest_score), risk_end=epoch(risk[1]) if risk else None,
                      risk_length_s=(risk[1] - risk[0]).total_seconds() if risk else None,
                      behaviour_end=epoch(behaviour))


class WindowFreshnessCollector(Collector):
    """Reads the serving tables on every scrape and keeps, per window table, when its scores started waiting."""

    def __init__(self, settings: Settings, read: Callable[[], WindowEnds] | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.read = read or (lambda: read_window_ends(settings))
        self.wall_clock = wall_clock
        self.settings = settings
        self.errors = 0
        self._clocks: dict[str, WindowClock | None] = {}
        self._lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """One scrape: each window table's age, newest end and close-due time, and whether PostgreSQL answered."""
        age = GaugeMetricFamily("loanrisk_window_age_seconds",
                                "Wall seconds the newest closed window has stood still while scored events wait "
                                "beyond it (0 when none wait)", labels=["table"])
        newest = GaugeMetricFamily("loanrisk_window_newest_end_seconds",
                                   "Event time (epoch s) of the newest closed window's end", labels=["table"])
        due = GaugeMetricFamily("loanrisk_window_close_due_seconds",
                                "Longest a window may stay open with events in it: its length plus the watermark "
                                "delay", labels=["table"])
        up = GaugeMetricFamily("loanrisk_serving_up", "1 when the last scrape could read the serving tables")
        with self._lock:
            try:
                ends = self.read()
                now = self.wall_clock()
                job = job_windows(self.settings)
                delay = job.watermark_delay_s
                # The risk window's length as the job wrote it, then as it was submitted.
                lengths = {"risk_by_window": ends.risk_length_s or job.risk_window_s,
                           "customer_behaviour_windows": job.behaviour_window_s}
                newest_ends = {"risk_by_window": ends.risk_end, "customer_behaviour_windows": ends.behaviour_end}
                for table, end in newest_ends.items():
                    seconds, self._clocks[table] = window_age(self._clocks.get(table), end, ends.newest_score, now)
                    age.add_metric([table], seconds)
                    if end is not None:
                        newest.add_metric([table], end)
                    due.add_metric([table], lengths[table] + delay)
                up.add_metric([], 1)
            except Exception:  # noqa: BLE001 - a scrape must answer; PostgreSQL being away is a metric
                self.errors += 1
                up.add_metric([], 0)
        errors = CounterMetricFamily("loanrisk_serving_read_errors", "Scrapes that could not read the serving tables")
        errors.add_metric([], self.errors)
        yield from (age, newest, due, up, errors)


def main() -> None:
    """Serve /metrics on 127.0.0.1:<prometheus.port + 1> until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", help="the service's state folder (marks the process for `stack down`)")
    parser.parse_args()
    from loanrisk.logs import setup_logging
    setup_logging()
    serve(get_settings(), "127.0.0.1")


def serve(settings: Settings, host: str) -> None:
    """Serve /metrics on ``host``:<prometheus.port + 1> until SIGTERM or SIGINT."""
    registry = CollectorRegistry()
    registry.register(ConsumerLagCollector(settings))
    registry.register(WindowFreshnessCollector(settings))
    server, thread = start_http_server(settings.prometheus.exporter_port, addr=host, registry=registry)
    log.info("serving /metrics on %s:%d", host, settings.prometheus.exporter_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(timeout=5)
    log.info("stopped")


if __name__ == "__main__":
    main()
