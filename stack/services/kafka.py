"""Kafka: a single-node KRaft broker (formatted on first start) and the platform's topics."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

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
        return {"broker": k.port, "controller": k.controller_port, "admin": k.admin_port, **tls}

    def tls_properties(self) -> list[str]:
        """The TLS listener's lines (none unless kafka.tls_port is set): its clients log in as the platform's do
        (SASL_SSL), or, with the platform opted out to PLAINTEXT, do not (SSL)."""
        k = self.settings.kafka
        if not k.tls_port:
            return []
        if not k.tls_keystore_file or not Path(k.tls_keystore_file).exists():
            raise StackError("kafka.tls_port needs kafka.tls_keystore_file: a PEM file with the broker's private key "
                             "and certificate chain (LOANRISK_KAFKA__TLS_KEYSTORE_FILE)")
        return ["ssl.keystore.type=PEM", f"ssl.keystore.location={k.tls_keystore_file}", "ssl.client.auth=none"]

    @property
    def platform_protocol(self) -> str:
        """What the platform's listener (kafka.port) speaks: SASL_PLAINTEXT, or PLAINTEXT when opted out."""
        protocol = self.settings.kafka.security_protocol
        if protocol not in ("SASL_PLAINTEXT", "PLAINTEXT"):
            raise StackError(f"kafka.security_protocol {protocol}: the local broker serves the platform SASL_PLAINTEXT "
                             "(or PLAINTEXT) on kafka.port, and TLS on kafka.tls_port only; set "
                             "LOANRISK_KAFKA__SECURITY_PROTOCOL=SASL_PLAINTEXT, or LOANRISK_KAFKA__BOOTSTRAP_SERVERS "
                             "for another cluster")
        return protocol

    def sasl_properties(self) -> list[str]:
        """SCRAM on the platform's listener and the authorizer (none when the platform is opted out to PLAINTEXT).

        ACLs are enforced by the standard authorizer on every listener; the admin and controller listeners
        act as ANONYMOUS, a super user: they are the stack's own (topic creation, SCRAM users, ACLs), bound
        to loopback, as PostgreSQL is administered over its Unix socket. Clients of the platform's listener get
        only what their ACLs grant (:func:`grant_sasl_access`).
        """
        if self.platform_protocol != "SASL_PLAINTEXT":
            return []
        scram = [f"listener.name.{name}.scram-sha-512.sasl.jaas.config="
                 "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                 for name in ("platform", *(["tls"] if self.settings.kafka.tls_port else []))]
        return ["sasl.enabled.mechanisms=SCRAM-SHA-512", *scram,
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users=User:ANONYMOUS", "allow.everyone.if.no.acl.found=false"]

    @property
    def classpath(self) -> str:
        return str(self.settings.install_dir / "jars" / "kafka" / "*")

    def properties(self) -> str:
        k = self.settings.kafka
        tls = f",TLS://127.0.0.1:{k.tls_port}" if k.tls_port else ""
        tls_protocol = "SASL_SSL" if self.platform_protocol == "SASL_PLAINTEXT" else "SSL"
        platform = f"PLATFORM://127.0.0.1:{k.port}"
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{k.controller_port}",
            f"listeners={platform},ADMIN://127.0.0.1:{k.admin_port},CONTROLLER://127.0.0.1:{k.controller_port}{tls}",
            f"advertised.listeners={platform},ADMIN://127.0.0.1:{k.admin_port}{tls}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=ADMIN",
            f"listener.security.protocol.map=CONTROLLER:PLAINTEXT,ADMIN:PLAINTEXT,PLATFORM:{self.platform_protocol},"
            f"TLS:{tls_protocol}",
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
            md = AdminClient({**admin_config(self.settings.kafka),
                              "socket.timeout.ms": 2000, "log_level": 0}).list_topics(timeout=2)
            return bool(md.brokers)
        except Exception:  # noqa: BLE001 - any client error means "not yet"
            return False

    def after_start(self) -> None:
        k = self.settings.kafka
        ensure_topics(k, k.topics.all(), k.topics.partitions, k.topics.topic_config(k.max_message_bytes))
        if k.sasl:
            grant_sasl_access(k)


def admin_config(k: KafkaSettings) -> dict[str, Any]:
    """The stack's own client of the broker: the admin listener (PLAINTEXT, a super user, never a platform client's).

    Platform clients take ``KafkaSettings.client_config`` and log in on the platform's listener.
    """
    return {"bootstrap.servers": k.admin_bootstrap}


def _allow(user: str, rtype: Any, name: str, pattern: Any, *ops: Any) -> list[Any]:
    from confluent_kafka.admin import AclBinding, AclPermissionType
    return [AclBinding(rtype, name, pattern, f"User:{user}", "*", op, AclPermissionType.ALLOW) for op in ops]


def _topic_acls(user: str, names: list[str]) -> list[Any]:
    """What the platform user may do on its topics: read, write and describe them, nothing more."""
    from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType
    return [acl for name in names for acl in _allow(user, ResourceType.TOPIC, name, ResourcePatternType.LITERAL,
                                                     AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE)]


def _create_acls(admin: Any, acls: list[Any]) -> None:
    for acl, fut in admin.create_acls(acls).items():
        try:
            fut.result(timeout=30)
        except Exception as exc:  # noqa: BLE001
            raise StackError(f"could not create the Kafka ACL {acl}: {exc}") from None


def grant_sasl_access(k: KafkaSettings) -> None:
    """SCRAM users and ACLs of the platform's listener (idempotent: passwords and ACLs are set again on every start).

    The platform user reads and writes the platform topics (:func:`ensure_topics` grants each topic it makes), uses
    any consumer group and transactional id (the job's exactly-once sinks) and may write idempotently; the analyst
    reads and describes the platform topics with consumer groups named ``<analyst>*``, and nothing else.
    """
    from confluent_kafka.admin import (
        AclOperation, AdminClient, ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
        UserScramCredentialAlteration, UserScramCredentialUpsertion,
    )
    admin = AdminClient(admin_config(k))
    users = [k.sasl_user, k.analyst_username]
    scram = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(u, scram, k.sasl_secret(u).encode()) for u in users]
    for user, fut in admin.alter_user_scram_credentials(upserts).items():
        try:
            fut.result(timeout=30)
        except Exception as exc:  # noqa: BLE001
            raise StackError(f"could not set the SCRAM credential of Kafka user {user}: {exc}") from None

    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    acls = _topic_acls(k.sasl_user, k.topics.all())
    for topic in k.topics.all():
        acls += _allow(k.analyst_username, ResourceType.TOPIC, topic, literal, AclOperation.READ,
                       AclOperation.DESCRIBE)
    acls += _allow(k.sasl_user, ResourceType.GROUP, "*", literal, AclOperation.READ, AclOperation.DESCRIBE)
    acls += _allow(k.sasl_user, ResourceType.TRANSACTIONAL_ID, "*", literal, AclOperation.WRITE, AclOperation.DESCRIBE)
    acls += _allow(k.sasl_user, ResourceType.BROKER, "kafka-cluster", literal, AclOperation.IDEMPOTENT_WRITE,
                   AclOperation.DESCRIBE)
    acls += _allow(k.analyst_username, ResourceType.GROUP, k.analyst_username, prefixed, AclOperation.READ,
                   AclOperation.DESCRIBE)
    _create_acls(admin, acls)


def ensure_topics(k: KafkaSettings, names: list[str], partitions: int, config: dict[str, str]) -> None:
    """Create the missing topics with ``config``, set ``config`` on those that exist (idempotent) and, over SASL, let
    the platform user read and write them; through the admin listener, as only the stack creates topics.

    Setting it on existing topics is how a lowered retention reaches an installation made before it.
    """
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
    admin = AdminClient(admin_config(k))
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
    if k.sasl:
        _create_acls(admin, _topic_acls(k.sasl_user, names))


def drop_topics(k: KafkaSettings, names: list[str], timeout_s: float = 30.0) -> None:
    """Delete topics :func:`ensure_topics` made (tests' and benchmarks' own) with the platform user's ACLs on them;
    missing ones are ignored."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AclBindingFilter, AdminClient
    admin = AdminClient(admin_config(k))
    for future in admin.delete_topics(list(names), operation_timeout=timeout_s).values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException:
            pass
    if k.sasl:
        filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                                    b.permission_type) for b in _topic_acls(k.sasl_user, names)]
        for future in admin.delete_acls(filters).values():
            future.result(timeout=timeout_s)


def topic_offsets(k: KafkaSettings, topic: str) -> int:
    """Total number of messages ever written to ``topic`` (sum of high watermarks), read as a platform client.

    An admin client, not a consumer: a consumer with a group id looks up its group coordinator at once, and
    closing it while that connection still authenticates makes librdkafka print a SASL error (the demo's
    table, refreshed every few seconds, was full of them)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec
    admin = AdminClient(k.client_config())
    md = admin.list_topics(topic, timeout=10)
    latest = {TopicPartition(topic, p): OffsetSpec.latest() for p in md.topics[topic].partitions}
    if not latest:
        return 0
    return sum(f.result().offset for f in admin.list_offsets(latest, request_timeout=10).values())


__all__ = ["KafkaBroker", "admin_config", "drop_topics", "ensure_topics", "grant_sasl_access", "topic_offsets"]
