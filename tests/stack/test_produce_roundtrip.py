"""100,000 synthetic events through the real broker and back: none lost, none doubled, each customer's order kept."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest

from ingestion.consumer import EventConsumer
from ingestion.generator import GeneratorConfig, generate
from ingestion.producer import ConfluentEventProducer, make_producer, produce_events
from loanrisk.settings import KafkaSettings
from stack.services.kafka import drop_topics, ensure_topics

pytestmark = pytest.mark.stack

EVENTS = 100_000


def _roundtrip(kafka: KafkaSettings, impl: str, count: int) -> None:
    run = uuid.uuid4().hex[:8]
    topics = {name: f"roundtrip-{run}-{name}" for name in ("loan_application", "transaction", "repayment")}
    ensure_topics(kafka, list(topics.values()), 3, {})
    try:
        config = GeneratorConfig(seed=99, topics=topics, history_months=1)
        sent = [m for m, _ in zip(generate(config), range(count))]
        producer = make_producer(impl, kafka=kafka)
        producer.check_connection()
        summary = produce_events(iter(sent), producer, flush_timeout_s=120)
        producer.close()
        assert (summary.handed, summary.delivered, summary.failed, summary.pending, summary.refused) == \
            (count, count, 0, 0, 0), summary.line()

        with EventConsumer(list(topics.values()), group_id=f"roundtrip-{run}", kafka=kafka,
                           read_committed=True) as consumer:
            received = consumer.read(count, idle_timeout_s=30)
            consumer.commit()
        assert len(received) == count, f"{count - len(received)} events lost"
        assert sorted(r.value for r in received) == sorted(m.value_bytes for m in sent)

        def per_customer(records: list[tuple[str, str | None, bytes]]) -> dict[tuple[str, str | None], list[bytes]]:
            order: dict[tuple[str, str | None], list[bytes]] = defaultdict(list)
            for topic, key, value in records:
                order[(topic, key)].append(value)
            return order

        produced_order = per_customer([(m.topic, m.key, m.value_bytes) for m in sent])
        consumed_order = per_customer([(r.topic, r.key, r.value) for r in received])
        assert consumed_order == produced_order
        partitions = defaultdict(set)
        for r in received:
            partitions[(r.topic, r.key)].add(r.partition)
        assert all(len(p) == 1 for p in partitions.values())  # one customer, one partition per topic
        assert len({r.partition for r in received}) == 3
    finally:
        drop_topics(kafka, list(topics.values()))


def test_100k_synthetic_events_roundtrip_without_loss_in_customer_order(kafka: KafkaSettings) -> None:
    _roundtrip(kafka, "confluent", EVENTS)


def test_kafka_python_producer_keeps_the_same_promises(kafka: KafkaSettings) -> None:
    _roundtrip(kafka, "kafka-python", 10_000)


def test_oversized_message_is_refused_at_the_producer(kafka: KafkaSettings) -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"roundtrip-{run}-big"
    ensure_topics(kafka, [topic], 1, {})
    try:
        producer = make_producer(kafka=kafka)
        limit = producer.max_message_bytes
        assert producer.send(topic, "c1", b"x" * (limit - 100))
        assert not producer.send(topic, "c1", b"x" * (limit + 1))
        assert producer.flush(60) == 0
        assert (producer.stats.delivered, producer.stats.failed, producer.stats.refused_too_large) == (1, 0, 1)
    finally:
        drop_topics(kafka, [topic])


def test_config_topics_reach_their_topics(kafka: KafkaSettings) -> None:
    """Each contract's events land on the topic configured for it (the mapping the CLI uses)."""
    run = uuid.uuid4().hex[:8]
    topics = {name: f"roundtrip-{run}-{name}" for name in ("loan_application", "transaction", "repayment")}
    ensure_topics(kafka, list(topics.values()), 1, {})
    try:
        sent = list(generate(GeneratorConfig(seed=5, topics=topics, customers=30, spend_txn_per_month=3)))
        producer = make_producer(kafka=kafka)
        assert produce_events(iter(sent), producer).delivered == len(sent)
        with EventConsumer(list(topics.values()), group_id=f"kinds-{run}", kafka=kafka) as consumer:
            received = consumer.read(len(sent), idle_timeout_s=20)
        assert len(received) == len(sent)
        kind_of = {m.value_bytes: m.kind for m in sent}
        assert all(topics[kind_of[r.value]] == r.topic for r in received)
        assert {r.topic for r in received} == set(topics.values())
    finally:
        drop_topics(kafka, list(topics.values()))


def test_delivery_errors_are_counted_not_reported_as_sent(kafka: KafkaSettings) -> None:
    producer = make_producer(kafka=kafka, overrides={"topic.metadata.propagation.max.ms": 1000})
    for i in range(5):
        producer.send(f"no-such-topic-{uuid.uuid4().hex[:8]}", f"c{i}", b"{}")
    assert producer.flush(60) == 0
    assert (producer.stats.delivered, producer.stats.failed) == (0, 5)
    # Over SASL the broker does not even tell a client without rights on a topic whether it exists.
    refusal = "Topic authorization failed" if kafka.sasl else "Unknown topic"
    assert any(refusal in e for e in producer.stats.errors), producer.stats.errors


def test_read_to_end_stops_at_the_last_stable_offset_without_waiting_for_an_open_transaction(
        kafka: KafkaSettings) -> None:
    """The job's transactional sinks always hold a transaction open; reading "everything committed" must not
    wait for it (an idle timeout would), nor show its records, and must see empty partitions end too."""
    from confluent_kafka import Producer
    run = uuid.uuid4().hex[:8]
    topic = f"roundtrip-{run}-txn"
    ensure_topics(kafka, [topic], 4, {})
    producer = Producer({**kafka.client_config(), "transactional.id": f"read-to-end-{run}"})
    try:
        producer.init_transactions(60)
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, key="same-partition", value=f"committed-{i}".encode())
        producer.commit_transaction(60)
        producer.begin_transaction()
        producer.produce(topic, key="same-partition", value=b"open")
        producer.flush(60)
        with EventConsumer([topic], group_id=f"to-end-{run}", kafka=kafka,
                           read_committed=True) as consumer:
            received = consumer.read_to_end(timeout_s=60)
        assert [r.value for r in received] == [b"committed-0", b"committed-1", b"committed-2"]
    finally:
        producer.abort_transaction(60)
        drop_topics(kafka, [topic])


def test_a_transaction_holds_every_message_back_until_it_commits(kafka: KafkaSettings) -> None:
    """The producer's transaction (what bench/cost_ladder.py releases a backlog with): a read_committed consumer
    sees none of the messages while it is open, then all of them at once."""
    run = uuid.uuid4().hex[:8]
    topic = f"roundtrip-{run}-held"
    ensure_topics(kafka, [topic], 2, {})
    producer = make_producer(kafka=kafka, overrides={"transactional.id": f"held-{run}"})
    assert isinstance(producer, ConfluentEventProducer)
    try:
        producer.begin_transaction()
        for i in range(50):
            producer.send(topic, f"k{i % 5}", f"held-{i}".encode())
        assert producer.flush(60) == 0
        with EventConsumer([topic], group_id=f"held-{run}", kafka=kafka,
                           read_committed=True) as consumer:
            assert consumer.read_to_end(timeout_s=60) == []
            producer.commit_transaction(60)
            received = consumer.read(50, idle_timeout_s=20)
        assert sorted(r.value for r in received) == sorted(f"held-{i}".encode() for i in range(50))
        assert producer.stats.failed == 0
    finally:
        producer.close()
        drop_topics(kafka, [topic])
