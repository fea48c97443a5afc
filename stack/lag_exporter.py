"""Kafka consumer-lag exporter: the risk job's committed offsets against each input partition's end, for Prometheus.

Why an exporter and not only Flink's own metrics: the Flink Kafka source commits its offsets to the
consumer group on every completed checkpoint, so ``end offset - committed offset`` is the backlog the
job has not durably processed. It is measured from outside the job, so it keeps growing (and the alert
keeps firing) when the job is down, restarting or stuck in failing checkpoints; Flink's
``pendingRecords`` disappears exactly then. Run: ``python -m stack.lag_exporter --state DIR``.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from loanrisk.settings import Settings, get_settings

# librdkafka's OFFSET_INVALID: the group has committed nothing for the partition yet.
NO_COMMIT = -1001


def partition_lag(committed: int, low: int, high: int) -> int:
    """Records of one partition the group has not committed: from its commit (or the log start) to the end."""
    start = committed if committed >= 0 else low
    return max(high - max(start, low), 0)


class ConsumerLagCollector(Collector):
    """Reads committed offsets and watermarks on every scrape (no background polling)."""

    def __init__(self, settings: Settings, timeout_s: float = 5.0) -> None:
        from confluent_kafka import Consumer
        self.group = settings.flink.consumer_group
        self.topics = [settings.kafka.topics.applications, settings.kafka.topics.transactions,
                       settings.kafka.topics.repayments]
        self.timeout_s = timeout_s
        self.errors = 0
        self._lock = threading.Lock()
        # Never subscribes, so it never joins the group: it only reads the group's committed offsets.
        self._consumer = Consumer({**settings.kafka.client_config(), "group.id": self.group,
                                   "enable.auto.commit": False, "client.id": "loanrisk-lag-exporter"})

    def _partitions(self) -> list:
        from confluent_kafka import TopicPartition
        meta = self._consumer.list_topics(timeout=self.timeout_s)
        return [TopicPartition(t, p) for t in self.topics if t in meta.topics for p in sorted(meta.topics[t].partitions)]

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """One scrape: lag, committed offset and end offset per partition, and whether Kafka answered."""
        lag = GaugeMetricFamily("loanrisk_kafka_consumer_lag", "Records not yet committed by the consumer group",
                                labels=["group", "topic", "partition"])
        committed_g = GaugeMetricFamily("loanrisk_kafka_committed_offset", "Offset the consumer group committed",
                                        labels=["group", "topic", "partition"])
        end = GaugeMetricFamily("loanrisk_kafka_log_end_offset", "High watermark of the partition",
                                labels=["topic", "partition"])
        up = GaugeMetricFamily("loanrisk_kafka_up", "1 when the last scrape could read Kafka")
        with self._lock:
            try:
                parts = self._partitions()
                committed = {(tp.topic, tp.partition): tp.offset
                             for tp in self._consumer.committed(parts, timeout=self.timeout_s)}
                for tp in parts:
                    low, high = self._consumer.get_watermark_offsets(tp, timeout=self.timeout_s, cached=False)
                    done = committed.get((tp.topic, tp.partition), NO_COMMIT)
                    labels = [tp.topic, str(tp.partition)]
                    lag.add_metric([self.group, *labels], partition_lag(done, low, high))
                    committed_g.add_metric([self.group, *labels], max(done, 0))
                    end.add_metric(labels, high)
                up.add_metric([], 1)
            except Exception:  # noqa: BLE001 - a scrape must answer; Kafka being away is a metric
                self.errors += 1
                up.add_metric([], 0)
        errors = CounterMetricFamily("loanrisk_lag_exporter_errors", "Scrapes that could not read Kafka")
        errors.add_metric([], self.errors)
        yield from (lag, committed_g, end, up, errors)


def main() -> None:
    """Serve /metrics on 127.0.0.1:<prometheus.port + 1> until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", help="the service's state folder (marks the process for `stack down`)")
    parser.parse_args()
    settings = get_settings()
    registry = CollectorRegistry()
    registry.register(ConsumerLagCollector(settings))
    server, thread = start_http_server(settings.prometheus.exporter_port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(timeout=5)


if __name__ == "__main__":
    main()
