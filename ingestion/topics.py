"""Creating and deleting topics for tools, tests and benchmarks (the stack creates the platform's own)."""

from __future__ import annotations

from typing import Any

from loanrisk.errors import LoanRiskError


def create_topics(conf: dict[str, Any], names: list[str], partitions: int = 2, timeout_s: float = 30.0) -> None:
    """Create ``names`` (replication 1) unless they exist; ``conf`` is a client config with bootstrap.servers."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(conf)
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
                                  operation_timeout=timeout_s, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise LoanRiskError(f"cannot create topic {name}: {exc}") from None


def delete_topics(conf: dict[str, Any], names: list[str], timeout_s: float = 30.0) -> None:
    """Delete ``names``; missing topics are ignored."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(conf)
    for future in admin.delete_topics(list(names), operation_timeout=timeout_s).values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException:
            pass
