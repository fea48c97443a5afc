"""Kafka: a single-node KRaft broker (formatted on first start) and the platform's topics."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from loanrisk.errors import StackError
from stack.java import java_bin
from stack.services.base import Service

LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaServer
        level: INFO
"""


class KafkaBroker(Service):
    """The Kafka broker (broker + controller in one KRaft process)."""

    name = "kafka"

    @property
    def ports(self) -> dict[str, int]:
        k = self.settings.kafka
        tls = {"tls": k.tls_port} if k.tls_port else {}
        return {"broker": k.port, "controller": k.controller_port, **tls}

    def tls_properties(self) -> list[str]:
        """The TLS listener's lines (none unless kafka.tls_port is set); PLAINTEXT stays for the stack itself."""
        k = self.settings.kafka
        if not k.tls_port:
            return []
        if not k.tls_keystore_file or not Path(k.tls_keystore_file).exists():
            raise StackError("kafka.tls_port needs kafka.tls_keystore_file: a PEM file with the broker's private key "
                             "and certificate chain (LOANRISK_KAFKA__TLS_KEYSTORE_FILE)")
        return ["ssl.keystore.type=PEM", f"ssl.keystore.location={k.tls_keystore_file}", "ssl.client.auth=none"]

    @property
    def classpath(self) -> str:
        return str(self.settings.install_dir / "jars" / "kafka" / "*")

    def properties(self) -> str:
        k = self.settings.kafka
        tls = f",SSL://127.0.0.1:{k.tls_port}" if k.tls_port else ""
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{k.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{k.port},CONTROLLER://127.0.0.1:{k.controller_port}{tls}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{k.port}{tls}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL",
            *self.tls_properties(),
            f"log.dirs={self.home / 'data'}",
            f"num.partitions={k.topics.partitions}",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            f"message.max.bytes={k.max_message_bytes + 65536}",
            f"replica.fetch.max.bytes={k.max_message_bytes + 65536}",
            "transaction.max.timeout.ms=3600000",
            # Topics carry their own retention (kafka.topics.retention_hours); checking every 30 s instead of
            # 5 min keeps a message's life close to it.
            "log.retention.check.interval.ms=30000",
            "auto.create.topics.enable=false",
            "",
        ])

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(self.properties())
        (self.home / "log4j2.yaml").write_text(LOG4J2)
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = (self.home / "cluster.id")
            if not cluster_id.exists():
                cluster_id.write_text(uuid.uuid4().hex[:22])
            proc = subprocess.run([java_bin(), "-cp", self.classpath,
                                   f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}",
                                   "kafka.tools.StorageTool", "format", "--standalone", "-t",
                                   cluster_id.read_text().strip(), "-c", str(self.home / "server.properties")],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise StackError(f"formatting Kafka storage failed: {(proc.stdout + proc.stderr).strip()[-300:]}")

    def command(self) -> list[str]:
        return [java_bin(), "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}", f"-Dkafka.logs.dir={self.home}",
                "-cp", self.classpath, "kafka.Kafka", str(self.home / "server.properties")]

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient
        try:
            md = AdminClient({"bootstrap.servers": self.settings.kafka.bootstrap,
                              "socket.timeout.ms": 2000, "log_level": 0}).list_topics(timeout=2)
            return bool(md.brokers)
        except Exception:  # noqa: BLE001 - any client error means "not yet"
            return False

    def after_start(self) -> None:
        k = self.settings.kafka
        ensure_topics(k.bootstrap, k.topics.all(), k.topics.partitions, k.topics.topic_config(k.max_message_bytes))


def ensure_topics(bootstrap: str, names: list[str], partitions: int, config: dict[str, str]) -> None:
    """Create the missing topics with ``config``, and set ``config`` on those that exist (idempotent).

    Setting it on existing topics is how a lowered retention reaches an installation made before it.
    """
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [NewTopic(n, num_partitions=partitions, replication_factor=1, config=config)
              for n in names if n not in existing]
    for name, fut in (admin.create_topics(wanted).items() if wanted else []):
        try:
            fut.result(timeout=30)
        except Exception as exc:  # noqa: BLE001
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise StackError(f"could not create topic {name}: {exc}") from None
    kept = [ConfigResource(ConfigResource.Type.TOPIC, n, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET) for key, value in config.items()])
        for n in names if n in existing]
    for resource, fut in (admin.incremental_alter_configs(kept).items() if kept else []):
        try:
            fut.result(timeout=30)
        except Exception as exc:  # noqa: BLE001
            raise StackError(f"could not configure topic {resource.name}: {exc}") from None


def topic_offsets(bootstrap: str, topic: str) -> int:
    """Total number of messages ever written to ``topic`` (sum of high watermarks)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "loanrisk-offsets", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        total = 0
        for p in md.topics[topic].partitions:
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high
        return total
    finally:
        c.close()


__all__ = ["KafkaBroker", "ensure_topics", "topic_offsets", "Path"]
