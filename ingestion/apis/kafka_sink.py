"""The Kafka sink of the API pulls: a chunk counts as delivered only when Kafka acknowledged every event."""

from __future__ import annotations

from collections.abc import Callable

from ingestion.apis.runner import Event, Sink
from loanrisk.errors import LoanRiskError


class SinkError(LoanRiskError):
    """Kafka did not acknowledge every event of a chunk (the cursor was not advanced)."""


def kafka_sink() -> tuple[Sink, Callable[[], None]]:
    """Each event to the transactions topic keyed by customer_id; a chunk counts as acknowledged only
    when flush leaves nothing pending and no delivery failed or was refused. Returns (sink, close)."""
    from ingestion.producer import make_producer  # imported only when producing (needs confluent-kafka)
    from ingestion.wire import encode_event
    from loanrisk.settings import get_settings

    topic = get_settings().kafka.topics.transactions
    producer = make_producer()
    producer.check_connection()

    def sink(events: list[Event]) -> None:
        failed_before = producer.stats.failed
        refused = sum(not producer.send(topic, event["customer_id"], encode_event(event)) for event in events)
        pending = producer.flush()
        failed = producer.stats.failed - failed_before
        if refused or pending or failed:
            raise SinkError(f"Kafka did not acknowledge {refused + pending + failed} of {len(events)} events "
                            f"({refused} refused, {failed} failed, {pending} pending); the cursor was not "
                            "advanced, run again")

    return sink, producer.close
