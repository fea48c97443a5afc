"""Kafka: a single-node KRaft broker (formatted on first start) and the platform's topics."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from loanrisk.errors import StackError
from loanrisk.settings import KafkaSettings
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

    def sasl_properties(self) -> list[str]:
        """The SASL/SCRAM listener's lines (none unless kafka.sasl_port is set).

        ACLs are enforced by the standard authorizer on every listener; the loopback PLAINTEXT listener and
        the controller's act as ANONYMOUS, a super user: they are the stack's own (topic creation, SCRAM
        users, ACLs), as PostgreSQL is administered over its Unix socket. Clients of the SASL port get only
        what their ACLs grant (:func:`grant_sasl_access`).
        """
        k = self.settings.kafka
        if not k.sasl_port:
            return []
        return ["sasl.enabled.mechanisms=SCRAM-SHA-512",
                "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users=User:ANONYMOUS", "allow.everyone.if.no.acl.found=false"]

    @property
    def admin_bootstrap(self) -> str:
        """The loopback PLAINTEXT listener the stack administers the broker through."""
        return f"127.0.0.1:{self.settings.kafka.port}"

    @property
    def classpath(self) -> str:
        return str(self.settings.install_dir / "jars" / "kafka" / "*")

    def properties(self) -> str:
        k = self.settings.kafka
        tls = f",SSL://127.0.0.1:{k.tls_port}" if k.tls_port else ""
        tls += f",SASL_PLAINTEXT://127.0.0.1:{k.sasl_port}" if k.sasl_port else ""
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{k.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{k.port},CONTROLLER://127.0.0.1:{k.controller_port}{tls}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{k.port}{tls}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
            *self.tls_properties(),
            *self.sasl_properties(),
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
            md = AdminClient({"bootstrap.servers": self.admin_bootstrap,
                              "socket.timeout.ms": 2000, "log_level": 0}).list_topics(timeout=2)
            return bool(md.brokers)
        except Exception:  # noqa: BLE001 - any client error means "not yet"
            return False

    def after_start(self) -> None:
        k = self.settings.kafka
        ensure_topics(self.admin_bootstrap, k.topics.all(), k.topics.partitions,
                      k.topics.topic_config(k.max_message_bytes))
        if k.sasl_port:
            grant_sasl_access(self.admin_bootstrap, k)


def grant_sasl_access(admin_bootstrap: str, k: KafkaSettings) -> None:
    """SCRAM users and ACLs of the SASL listener (idempotent: passwords and ACLs are set again on every start).

    The platform user reads and writes the platform topics, uses any consumer group and transactional id
    (the job's exactly-once sinks) and may write idempotently; the analyst reads and describes the platform
    topics with consumer groups named ``<analyst>*``, and nothing else.
    """
    from confluent_kafka.admin import (
        AclBinding, AclOperation, AclPermissionType, AdminClient, ResourcePatternType, ResourceType,
        ScramCredentialInfo, ScramMechanism, UserScramCredentialAlteration, UserScramCredentialUpsertion,
    )
    admin = AdminClient({"bootstrap.servers": admin_bootstrap})
    users = [k.sasl_user, k.analyst_username]
    scram = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(u, scram, k.sasl_secret(u).encode()) for u in users]
    for user, fut in admin.alter_user_scram_credentials(upserts).items():
        try:
            fut.result(timeout=30)
        except Exception as exc:  # noqa: BLE001
            raise StackError(f"could not set the SCRAM credential of Kafka user {user}: {exc}") from None

    def allow(user: str, rtype: ResourceType, name: str, pattern: ResourcePatternType,
              *ops: AclOperation) -> list[AclBinding]:
        return [AclBinding(rtype, name, pattern, f"User:{user}", "*", op, AclPermissionType.ALLOW) for op in ops]

    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    acls: list[AclBinding] = []
    for topic in k.topics.all():
        acls += allow(k.sasl_user, ResourceType.TOPIC, topic, literal, AclOperation.READ, AclOperation.WRITE,
                      AclOperation.DESCRIBE)
        acls += allow(k.analyst_username, ResourceType.TOPIC, topic, literal, AclOperation.READ,
                      AclOperation.DESCRIBE)
    acls += allow(k.sasl_user, ResourceType.GROUP, "*", literal, AclOperation.READ, AclOperation.DESCRIBE)
    acls += allow(k.sasl_user, ResourceType.TRANSACTIONAL_ID, "*", literal, AclOperation.WRITE, AclOperation.DESCRIBE)
    acls += allow(k.sasl_user, ResourceType.BROKER, "kafka-cluster", literal, AclOperation.IDEMPOTENT_WRITE,
                  AclOperation.DESCRIBE)
    acls += allow(k.analyst_username, ResourceType.GROUP, k.analyst_username, prefixed, AclOperation.READ,
                  AclOperation.DESCRIBE)
    for acl, fut in admin.create_acls(acls).items():
        try:
            fut.result(timeout=30)
        except Exception as exc:  # noqa: BLE001
            raise StackError(f"could not create the Kafka ACL {acl}: {exc}") from None


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
