"""Producer throughput for the synthetic event mix: confluent-kafka vs kafka-python in one run (events/s, MB/s).

    .venv/bin/python -m bench.producer_throughput [--events 200000]

against the broker the settings name (LOANRISK_KAFKA__PORT, or LOANRISK_KAFKA__BOOTSTRAP_SERVERS with its
security settings), logged in as every platform client is; the bench topics are made through the local
broker's admin listener.

The events are generated first (not timed against the producers), then each client sends the same
messages to fresh topics with the platform's settings (acks=all, idempotence, compression, batching) and
is timed from the first send until flush returns. Target: >= 50,000 events/s from one process with
the faster client.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from ingestion.generator import GeneratorConfig, generate
from ingestion.producer import (CONFLUENT_COMPRESSION, IMPLEMENTATIONS, KAFKA_PYTHON_COMPRESSION, make_producer,
                                produce_events)
from ingestion.wire import ProducedEvent
from loanrisk.errors import LoanRiskError
from loanrisk.settings import KafkaSettings, get_settings
from stack.services.kafka import drop_topics, ensure_topics

TARGET_EVENTS_PER_S = 50_000
KINDS = ("loan_application", "transaction", "repayment")


def event_mix(count: int, seed: int) -> tuple[list[ProducedEvent], float]:
    """``count`` synthetic messages (topics renamed later) and the generator's own rate while making them."""
    start = time.perf_counter()
    events = [m for m, _ in zip(generate(GeneratorConfig(seed=seed, history_months=1)), range(count))]
    return events, count / (time.perf_counter() - start)


def measure(impl: str, events: list[ProducedEvent], kafka: KafkaSettings, partitions: int) -> dict[str, float]:
    """Send ``events`` with one client to fresh topics; events/s and MB/s from first send to flush."""
    run = uuid.uuid4().hex[:8]
    topics = {kind: f"bench-{run}-{kind}" for kind in KINDS}
    ensure_topics(kafka, list(topics.values()), partitions, {})
    try:
        renamed = [ProducedEvent(topics[e.kind], e.key, e.value_bytes, e.event_id, e.kind, e.event_time_ms)
                   for e in events]
        producer = make_producer(impl, kafka=kafka)
        producer.check_connection()
        summary = produce_events(renamed, producer, flush_timeout_s=300)
        producer.close()
    finally:
        drop_topics(kafka, list(topics.values()))
    return {"events_per_s": summary.delivered / summary.elapsed_s,
            "mb_per_s": summary.bytes / summary.elapsed_s / 1e6, "delivered": summary.delivered,
            "failed": summary.failed + summary.pending, "seconds": summary.elapsed_s}


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one line per client plus the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="messages per client (default 200,000)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions per bench topic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--impl", choices=("both",) + IMPLEMENTATIONS, default="both")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")

    events, gen_rate = event_mix(args.events, args.seed)
    size = sum(len(e.value_bytes) for e in events)
    mix = {k: sum(e.kind == k for e in events) / len(events) for k in KINDS}
    print(f"event mix: {len(events):,} messages, {size / 1e6:.1f} MB, mean {size / len(events):.0f} B; "
          + ", ".join(f"{k} {v:.1%}" for k, v in mix.items()))
    print(f"generator alone: {gen_rate:,.0f} events/s (one process, not part of the producer figures)")
    print(f"clients: acks=all, idempotence, linger 20 ms; compression confluent={CONFLUENT_COMPRESSION}, "
          f"kafka-python={KAFKA_PYTHON_COMPRESSION}; {args.partitions} partitions per topic")
    results = {}
    for impl in (IMPLEMENTATIONS if args.impl == "both" else (args.impl,)):
        try:
            results[impl] = r = measure(impl, events, get_settings().kafka, args.partitions)
        except LoanRiskError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{impl:>14}: {r['events_per_s']:>10,.0f} events/s  {r['mb_per_s']:7.2f} MB/s  "
              f"({r['delivered']:,} delivered, {r['failed']:,} failed, {r['seconds']:.1f} s)")
    best = max(results, key=lambda k: results[k]["events_per_s"])
    verdict = "met" if results[best]["events_per_s"] >= TARGET_EVENTS_PER_S else "NOT met"
    print(f"target >= {TARGET_EVENTS_PER_S:,} events/s from one process: {verdict} by {best} "
          f"({results[best]['events_per_s']:,.0f} events/s)")
    return 1 if any(r["failed"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
