"""One typed settings object for the whole platform, merged from defaults, a YAML file and the environment.

Precedence (highest first), as in pyiceberg's catalog configuration:
  1. environment variables  ``LOANRISK_<SECTION>__<FIELD>`` (e.g. ``LOANRISK_KAFKA__PORT=19092``)
  2. the YAML file named by ``LOANRISK_CONFIG`` (default ``./loanrisk.yaml`` when present)
  3. the defaults below: a one-machine stack of local processes on 127.0.0.1.
Secrets are ``SecretStr``: they come from the environment or a ``*_file`` path, never from code, and
never print.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from contracts.outcomes import HORIZON_MONTHS
from contracts.registry_layout import DEFAULT_MAX_MODEL_BYTES
from contracts.validate import DEFAULT_FUTURE_TOLERANCE
from loanrisk.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
# A loan's stream state is kept this long after its last change: repayment records arrive monthly while
# a loan runs (missed ones included), so five years of silence plus the label horizon means it has ended.
LOAN_RETENTION_DAYS = (60 + HORIZON_MONTHS) * 30
LOOPBACK = "127.0.0.1"


def _read_secret(value: SecretStr | None, file: Path | None) -> SecretStr | None:
    """Return the secret, reading it from ``file`` when only a file path is configured."""
    if value is not None or file is None:
        return value
    try:
        return SecretStr(Path(file).read_text().strip())
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {file}: {exc.strerror}") from None


def generated_secret(path: Path) -> SecretStr:
    """The random secret kept in ``path`` (mode 0600), made on first use: an installation's own, not a default
    anyone could look up. Letters, digits, '-' and '_' only, so it needs no quoting in any file or literal."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(24))
    value = _read_secret(None, path)
    assert value is not None
    return value


class TopicSettings(BaseModel):
    """Kafka topic names and partition counts."""

    applications: str = "loan-applications"
    transactions: str = "transactions"
    repayments: str = "repayments"
    dead_letters: str = "dead-letters"
    alerts: str = "risk-alerts"
    partitions: int = Field(2, ge=1, le=64)
    retention_hours: float = Field(
        168, gt=0, description="How long every platform topic keeps a message (the input topics hold raw PII "
        "until then); with its segment roll and file delete delay it must fit inside privacy.erasure_deadline_days")

    def all(self) -> list[str]:
        """Every topic the platform uses, inputs first."""
        return [self.applications, self.transactions, self.repayments, self.dead_letters, self.alerts]

    def retention_ms(self) -> int:
        return int(self.retention_hours * 3_600_000)

    def segment_ms(self) -> int:
        """Segment roll: Kafka deletes whole segments once their newest message is past retention, so a
        message lives at most retention plus one segment's span; a quarter of the retention bounds that."""
        return max(self.retention_ms() // 4, 1)

    def file_delete_delay_ms(self) -> int:
        """How long the broker keeps an expired segment's files before removing them (Kafka's default of a
        minute, or a quarter of the retention when that is shorter, so a compressed retention stays compressed)."""
        return min(60_000, max(self.retention_ms() // 4, 1))

    def longest_life_ms(self) -> int:
        """The longest a message can stay on a broker's disk: retention, a segment's span and the file delete
        delay (plus the broker's retention check interval, seconds)."""
        return self.retention_ms() + self.segment_ms() + self.file_delete_delay_ms()

    def topic_config(self, max_message_bytes: int) -> dict[str, str]:
        """The configuration every platform topic is created (and kept) with.

        ``max.message.bytes`` bounds a batch as it travels, compressed; ``max.decompressed.message.bytes``
        bounds each record once decompressed, so a small compressed record that expands to gigabytes (a
        decompression bomb) is refused by the broker at produce time and never reaches the job's consumers,
        whose Kafka client would allocate it whole.
        """
        limit = str(max_message_bytes + 65536)
        return {"max.message.bytes": limit, "max.decompressed.message.bytes": limit,
                "retention.ms": str(self.retention_ms()), "segment.ms": str(self.segment_ms()),
                "file.delete.delay.ms": str(self.file_delete_delay_ms())}


class KafkaSettings(BaseModel):
    """Kafka: the local KRaft broker by default, or any cluster (SASL_SSL/TLS) via ``bootstrap_servers``."""

    host: str = LOOPBACK
    port: int = Field(9092, ge=1, le=65535, description="The platform's listener: every client of the platform "
                      "(the job, producers, consumers, tools) bootstraps from host:port; on the local broker it takes "
                      "SASL/SCRAM-SHA-512 with ACLs (security_protocol SASL_PLAINTEXT) or, opted out, PLAINTEXT")
    controller_port: int = Field(9093, ge=1, le=65535)
    admin_port: int = Field(
        9094, ge=1, le=65535, description="Local broker: its PLAINTEXT listener on 127.0.0.1 that only the stack "
        "itself uses (topics, SCRAM users, ACLs), as PostgreSQL is administered over its socket; never a client's")
    bootstrap_servers: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "SASL_PLAINTEXT", description="How clients connect; the SASL settings apply to the SASL protocols only. A "
        "cluster without client authentication needs PLAINTEXT (or SSL) set explicitly")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = Field(None, description="The platform's SASL user (unset: loanrisk)")
    sasl_password: SecretStr | None = Field(None, description="Its password; unset with the local broker: generated, "
                                            "see generated_secrets_dir")
    sasl_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    max_message_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    tls_port: int | None = Field(None, ge=1, le=65535,
                                 description="Local broker: also listen with TLS on this port (needs tls_keystore_file)")
    tls_keystore_file: Path | None = Field(
        None, description="Local broker: PEM file holding its TLS private key (PKCS#8, unencrypted) and certificate chain")
    analyst_username: str = Field("risk_analyst", description="Local broker's read-only SASL user: reads and "
                                  "describes the platform topics with consumer groups named after it, nothing else")
    analyst_password: SecretStr | None = Field(None, description="The analyst's password (unset with the local "
                                               "broker: generated, its own)")
    analyst_password_file: Path | None = Field(None, description="File holding the analyst's password")
    generated_secrets_dir: Path | None = Field(
        None, description="Where the local broker's SASL passwords left unset are generated and kept, one 0600 file "
        "per user (default <stack.state_dir>/secrets)")
    topics: TopicSettings = TopicSettings()

    @property
    def bootstrap(self) -> str:
        """The bootstrap server list clients connect to."""
        return self.bootstrap_servers or f"{self.host}:{self.port}"

    @property
    def local_broker(self) -> bool:
        """The broker is the stack's own (no bootstrap_servers): it listens as these settings say."""
        return self.bootstrap_servers is None

    @property
    def admin_bootstrap(self) -> str:
        """The local broker's admin listener (PLAINTEXT, the stack's own): for the stack, never for a client."""
        return f"{self.host}:{self.admin_port}"

    @property
    def sasl(self) -> bool:
        """Whether clients log in (a SASL protocol): the SASL settings apply only then."""
        return self.security_protocol.startswith("SASL")

    def client_config(self) -> dict[str, Any]:
        """The librdkafka client configuration (confluent-kafka) of every platform client: where to connect and
        how to log in. Every Python client of the platform starts from it; only the stack's own administration
        of the local broker connects otherwise (stack/services/kafka.py)."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if self.security_protocol != "PLAINTEXT":
            conf["security.protocol"] = self.security_protocol
        if self.sasl:
            conf.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_user,
                         "sasl.password": self.sasl_secret()})
        for key, path in (("ssl.ca.location", self.ssl_cafile), ("ssl.certificate.location", self.ssl_certfile),
                          ("ssl.key.location", self.ssl_keyfile)):
            if path:
                conf[key] = str(path)
        return conf

    def java_properties(self) -> dict[str, str]:
        """The same security settings for Kafka's Java client (Flink's Kafka connector); empty for PLAINTEXT.

        TLS trusts ``ssl_cafile`` (PEM); SASL logs in with a JAAS line Flink masks in its logs (the key
        contains ``jaas.config``). Client certificates (mutual TLS) are for the Python clients only.
        """
        if self.security_protocol == "PLAINTEXT":
            return {}
        props: dict[str, str] = {"security.protocol": self.security_protocol}
        if "SSL" in self.security_protocol and self.ssl_cafile:
            props.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": str(self.ssl_cafile)})
        if self.sasl:
            # Flink's SQL Kafka connector relocates the Kafka client: its login modules live under this prefix,
            # and the unshaded class names fail the login (the JAAS line is read by the relocated client).
            shaded = "org.apache.flink.kafka.shaded.org.apache.kafka.common.security"
            module = (f"{shaded}.plain.PlainLoginModule" if self.sasl_mechanism == "PLAIN"
                      else f"{shaded}.scram.ScramLoginModule")
            quote = lambda v: v.replace("\\", "\\\\").replace('"', '\\"')  # noqa: E731
            props.update({"sasl.mechanism": self.sasl_mechanism, "sasl.jaas.config":
                          f'{module} required username="{quote(self.sasl_user)}" '
                          f'password="{quote(self.sasl_secret())}";'})
        return props

    @property
    def sasl_user(self) -> str:
        """The platform's SASL user: sasl_username, else the one the local broker creates."""
        return self.sasl_username or "loanrisk"

    def sasl_secret(self, username: str | None = None) -> str:
        """The SASL password of ``username`` (default: the platform's user; or the analyst): configured, else, on
        the local broker, the one generated for this installation."""
        user = username or self.sasl_user
        configured = None
        if user == self.sasl_user:
            configured = _read_secret(self.sasl_password, self.sasl_password_file)
        elif user == self.analyst_username:
            configured = _read_secret(self.analyst_password, self.analyst_password_file)
        if configured is not None:
            return configured.get_secret_value()
        if self.local_broker and self.sasl and self.generated_secrets_dir is not None:
            return generated_secret(self.generated_secrets_dir / f"kafka-{user}").get_secret_value()
        if user == self.sasl_user and self.sasl and not self.local_broker:
            raise ConfigError(f"kafka.security_protocol is {self.security_protocol} but kafka.sasl_password is unset: "
                              "set LOANRISK_KAFKA__SASL_PASSWORD_FILE, or LOANRISK_KAFKA__SECURITY_PROTOCOL=PLAINTEXT "
                              "(or SSL) for a cluster that does not authenticate clients")
        return ""


class FlinkSettings(BaseModel):
    """Flink standalone cluster and job settings (checkpointing, parallelism, state TTL)."""

    rest_address: str = LOOPBACK
    rest_port: int = Field(8081, ge=1, le=65535)
    jobmanager_rpc_port: int = Field(6123, ge=1, le=65535)
    taskmanager_slots: int = Field(2, ge=1)
    taskmanagers: int = Field(1, ge=1, le=8, description="TaskManager processes of the local cluster "
                              "(`riskctl stack up --taskmanagers N`); each has taskmanager_slots slots")
    cluster_home: Literal["shared", "bare"] = Field(
        "shared", description="FLINK_HOME the local cluster runs from: 'shared', the client's (its lib/ holds the "
        "connectors and the project's functions); 'bare', <install_dir>/flink-bare: Flink's own lib/ and the "
        "plugins only, like a cluster that shares nothing with the client, so the job ships its dependencies")
    ship_dependencies: bool = Field(
        False, description="Submit the risk job as to a remote cluster: the connector and function jars "
        "(pipeline.jars) and the Flink runtime Python environment (python.archives) travel with the job; always so "
        "with flink.remote_url or a bare cluster_home")
    jobmanager_memory: str = "1600m"
    taskmanager_memory: str = "8192m"
    taskmanager_managed_fraction: float = Field(0.2, gt=0, lt=1)
    parallelism: int = Field(2, ge=1)
    checkpoint_interval_ms: int = Field(10_000, ge=500)
    buffer_debloat: bool = Field(
        True, description="Network buffer debloating: lower tail latency under backpressure, "
        "at some drain throughput (docs/PERFORMANCE.md)")
    flamegraph: bool = Field(
        False, description="Serve flame graphs of each task's threads in Flink's web UI and REST API (sampled "
        "while a graph is open; bench/cost_ladder.py profiles the whole TaskManager with Java Flight Recorder instead)")
    checkpoint_storage: Literal["s3", "local"] = Field(
        "local", description="Where checkpoints and savepoints are kept: 's3' in the lake's bucket under "
        "flink.checkpoint_prefix, beside the data they commit and as durable as it (what a cluster should use); "
        "'local' under <stack.state_dir>/flink, the local stack's default: against s3proxy, Flink's S3 plugin "
        "took over two minutes per checkpoint of a few hundred kilobytes (docs/RELIABILITY.md)")
    checkpoint_prefix: str = Field(
        "flink", min_length=1, description="Folder of the lake's bucket that holds checkpoints/<job name>/ and "
        "savepoints/<job name>/ when checkpoint_storage is s3")
    restore_point_retention_days: float = Field(
        14, gt=0, description="Checkpoints and savepoints older than this are disposed of by `riskctl job prune` and "
        "the maintain_lake flow (the latest one, and the checkpoints of a running job, are kept): their state holds "
        "customer ids, so it must fit inside privacy.erasure_deadline_days")
    restart_attempts: int = Field(1000, ge=0)
    restart_delay_ms: int = Field(2_000, ge=0)
    dedup_retention_s: int = Field(
        129_600, ge=1, description="How long the job remembers an event id (and counts its repeats): a copy arriving "
        "later than this after the first is taken as a new event")
    behaviour_retention_s: int | None = Field(
        None, ge=1, description="How long a customer's behaviour history stays after their last closed window "
        "(default: three behaviour windows, the features' lookback)")
    loan_retention_s: int = Field(
        LOAN_RETENTION_DAYS * 86_400, ge=1, description="How long a loan's outcome (worst delay, first default) and "
        "its alert-once flag are kept after their last change: the longest term plus the label horizon")
    prometheus_ports: str = "9249-9259"
    python_batch_size: int = Field(2_000, ge=1)
    # Short: at a live rate the scorer's bundle and the PostgreSQL buffer are most of a score's wait, and a backlog
    # fills an Arrow batch (python_batch_size) long before the time runs out (docs/PERFORMANCE.md).
    python_bundle_time_ms: int = Field(
        20, ge=1, description="Longest a row waits in the scorer's bundle before the rows so far go to the Python "
        "worker (the serving path's latency floor, with serving_flush_ms); a full Arrow batch (python_batch_size "
        "rows) goes at once")
    serving_flush_ms: int = Field(
        50, ge=10, le=60_000, description="Longest a score, behaviour-window or active-application row waits in "
        "the job's JDBC buffer before it is written to PostgreSQL (the serving path's latency floor, beside "
        "python_bundle_time_ms); a buffer of 500 rows is written at once")
    lake_distribution: Literal["none", "hash"] | None = Field(
        None, description="How rows reach the job's Iceberg writers, overriding the lake tables' own "
        "write.distribution-mode ('none', contracts/table_sql.py) for this job: 'none', each writer chained to the "
        "operator before it, no shuffle, a file per writer and day partition at each checkpoint; 'hash', rows "
        "shuffled by partition, one file per day partition and checkpoint, for a replay of months of history "
        "(half the files at parallelism 2), but a live day's rows on one writer per table. Switched by a "
        "savepoint and `riskctl job resume` (docs/RUNBOOK.md, \"Replaying months of history\")")
    window_minutes: int = Field(1, ge=1)
    behaviour_window_days: int = Field(30, ge=1, le=99)
    watermark_delay_s: int = Field(300, ge=0)
    source_idle_timeout_s: int = Field(
        30, ge=5, le=3600, description="Seconds of processing time without records after which a Kafka partition "
        "stops holding the watermark back (table.exec.source.idle-timeout). Short loses events: while the job "
        "catches up on a backlog, the Kafka consumer hands over one partition's fetch (up to 1 MiB) at a time, "
        "the other partitions wait their turn, and one idle meanwhile lets the watermark run ahead of its "
        "unread events, which the windows then drop as late. Long delays the windows' closing while a "
        "partition is really silent. At least 5: watermark heartbeats come every 2 s")
    future_tolerance_s: int = Field(
        int(DEFAULT_FUTURE_TOLERANCE.total_seconds()), ge=0, le=7 * 86_400,
        description="Seconds an event time may be ahead of its Kafka timestamp; later ones are dead-lettered as "
        "future_event_time and do not move the watermark. Tight on purpose: an accepted event's time advances the "
        "watermark, so one event accepted this far ahead closes every window this much early and later on-time "
        "events are dropped as late; it only has to absorb clock skew between sources and producers")
    scorer: Literal["onnx", "onnx-row", "builtin"] = "onnx"
    consumer_group: str = "loanrisk-risk-job"
    remote_url: str | None = None

    @property
    def rest_url(self) -> str:
        """Base URL of the Flink REST API."""
        return self.remote_url or f"http://{self.rest_address}:{self.rest_port}"

    @property
    def ships(self) -> bool:
        """True when the job carries its jars and Python environment (see ship_dependencies)."""
        return self.ship_dependencies or self.remote_url is not None or self.cluster_home == "bare"

    @property
    def behaviour_retention(self) -> int:
        """Seconds of behaviour history kept per customer: the setting, else the features' three-window lookback."""
        return self.behaviour_retention_s or 3 * self.behaviour_window_days * 86_400

    @property
    def future_tolerance(self) -> timedelta:
        """The job's future tolerance, as ``contracts.validate.validate_event`` and the SQL specs take it."""
        return timedelta(seconds=self.future_tolerance_s)


class PostgresSettings(BaseModel):
    """PostgreSQL: the Iceberg JDBC catalog database and the serving database."""

    host: str = LOOPBACK
    port: int = Field(5432, ge=1, le=65535)
    auth: Literal["trust", "scram-sha-256"] = Field(
        "scram-sha-256", description="TCP client authentication of the local server: password (SCRAM) by default; "
        "trust lets any local user connect as any role, for throw-away setups only")
    user: str = "loanrisk"
    password: SecretStr | None = Field(None, description="The writer's password (unset: generated, see "
                                       "generated_secrets_dir)")
    password_file: Path | None = None
    catalog_db: str = "iceberg_catalog"
    serving_db: str = "risk_serving"
    reader_user: str = "risk_reader"
    reader_password: SecretStr | None = Field(None, description="The read-only role's password (unset: generated, "
                                              "its own)")
    reader_password_file: Path | None = Field(None, description="File holding the read-only role's password")
    generated_secrets_dir: Path | None = Field(
        None, description="Where passwords left unset are generated and kept, one 0600 file per role "
        "(default <stack.state_dir>/secrets)")

    def _own(self, value: SecretStr | None, file: Path | None, role: str) -> str:
        configured = _read_secret(value, file)
        if configured is None and self.auth != "trust" and self.generated_secrets_dir is not None:
            configured = generated_secret(self.generated_secrets_dir / f"postgres-{role}")
        return configured.get_secret_value() if configured else ""

    def secret(self) -> str:
        """The writer's password: configured, else generated for this installation ('' under trust)."""
        return self._own(self.password, self.password_file, self.user)

    def reader_secret(self) -> str:
        """The read-only role's own password: configured, else generated for this installation ('' under trust)."""
        return self._own(self.reader_password, self.reader_password_file, self.reader_user)

    def dsn(self, db: str, reader: bool = False) -> str:
        """A libpq connection string for database ``db``, as the writer or the read-only role."""
        user, secret = (self.reader_user, self.reader_secret()) if reader else (self.user, self.secret())
        pw = " password='{}'".format(secret.replace("\\", "\\\\").replace("'", "\\'")) if secret else ""
        return f"host={self.host} port={self.port} dbname={db} user={user}{pw}"

    def jdbc_url(self, db: str) -> str:
        """A JDBC URL for database ``db`` (credentials passed separately)."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{db}"

    def sqlalchemy_url(self, db: str) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for database ``db``."""
        from urllib.parse import quote
        pw = f":{quote(self.secret(), safe='')}" if self.secret() else ""
        return f"postgresql+psycopg://{self.user}{pw}@{self.host}:{self.port}/{db}"


class S3Credentials(NamedTuple):
    """Configured S3 keys, as every client takes them."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def _token_without_keys(token: SecretStr | None, token_file: Path | None, secret: SecretStr | None,
                        secret_file: Path | None) -> bool:
    """True when a session token is configured without the secret key it belongs to."""
    return (token is not None or token_file is not None) and secret is None and secret_file is None


class S3ReaderSettings(BaseModel):
    """The model registry's readers (the job's scorer, the scoring API): an endpoint and a key of their own.

    The trainer and `riskctl model promote` keep the s3 section's key, which writes. The readers' key cannot: with
    the local object store it belongs to a second s3proxy serving the same files read-only; on AWS it is a
    principal of its own (an IAM user's key, or the default credential chain) granted s3:GetObject on the registry.
    """

    host: str = Field(LOOPBACK, description="Host of the local read-only endpoint (unused with an endpoint URL)")
    port: int = Field(9001, ge=1, le=65535, description="Port of the local read-only endpoint: an s3proxy serving "
                      "the object store's files that refuses every write, bucket creation and deletion")
    endpoint: str | None = Field(None, description="URL the registry readers use; unset: s3.endpoint when that is "
                                 "set (the same store, another principal), else the local read-only endpoint")
    access_key_id: str = Field("loanrisk-reader", description="Access key id of the readers' secret key (the local "
                               "read-only endpoint's identity); must differ from s3.access_key_id")
    secret_access_key: SecretStr | None = Field(
        None, description="The readers' secret key. Unset with the local object store: generated, its own (see "
        "s3.generated_secrets_dir); unset (and no file) with s3.endpoint or s3.reader.endpoint: the readers take the "
        "AWS SDK's default credential chain, never the s3 section's key")
    secret_access_key_file: Path | None = Field(None, description="File holding the readers' secret key, read at use")
    session_token: SecretStr | None = Field(None, description="Session token of the readers' temporary credentials")
    session_token_file: Path | None = Field(None, description="File holding the readers' session token, read at use")

    @model_validator(mode="after")
    def _token_goes_with_keys(self) -> S3ReaderSettings:
        if _token_without_keys(self.session_token, self.session_token_file, self.secret_access_key,
                               self.secret_access_key_file):
            raise ValueError("s3.reader.session_token is part of temporary credentials: set s3.reader.access_key_id "
                             "and s3.reader.secret_access_key (or its _file) with it, or neither for the default chain")
        return self


class S3Settings(BaseModel):
    """The S3-compatible object store holding the lake and the model registry.

    Credentials are ``access_key_id`` with ``secret_access_key`` (plus ``session_token`` for temporary ones), or
    none at all: with no secret key configured, every client takes its AWS SDK's default credential chain
    (AWS_* environment variables, AWS_PROFILE and the shared config, web identity, instance metadata), which is
    how IAM roles reach the platform. The local object store keeps its generated key.
    """

    host: str = LOOPBACK
    port: int = Field(9000, ge=1, le=65535)
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key_id: str = Field("loanrisk", description="Access key id of secret_access_key (the local object "
                               "store's identity); unused when no secret key is configured")
    secret_access_key: SecretStr | None = Field(
        None, description="Unset with the local object store: generated, see generated_secrets_dir; unset (and no "
        "file) with s3.endpoint: every client takes the AWS SDK's default credential chain (AWS_* environment "
        "variables, AWS_PROFILE, web identity, instance metadata)")
    secret_access_key_file: Path | None = None
    session_token: SecretStr | None = Field(
        None, description="Session token of temporary credentials (with access_key_id and secret_access_key)")
    session_token_file: Path | None = Field(None, description="File holding session_token, read at use")
    bucket: str = "warehouse"
    path_style: bool = True
    generated_secrets_dir: Path | None = Field(
        None, description="Where the local object store's secret keys (the read-write one and the registry "
        "readers') are generated and kept when unset (default <stack.state_dir>/secrets)")
    reader: S3ReaderSettings = S3ReaderSettings()

    @model_validator(mode="after")
    def _token_goes_with_keys(self) -> S3Settings:
        if _token_without_keys(self.session_token, self.session_token_file, self.secret_access_key,
                               self.secret_access_key_file):
            raise ValueError("s3.session_token is part of temporary credentials: set s3.access_key_id and "
                             "s3.secret_access_key (or its _file) with it, or neither for the default credential chain")
        return self

    @model_validator(mode="after")
    def _readers_sign_with_a_key_of_their_own(self) -> S3Settings:
        # One key id is one principal: the readers would write with it wherever the read-write key may.
        if not self.for_readers().default_chain and self.reader.access_key_id == self.access_key_id:
            raise ValueError(f"s3.reader.access_key_id is {self.access_key_id!r}, the id of the read-write key "
                             "(s3.access_key_id): the model registry's readers need a key of their own that cannot "
                             "write; set another id (and its secret key, unless generated for the local store)")
        return self

    def for_readers(self) -> S3Settings:
        """These settings as the model registry's readers use them: the same bucket and region, the readers' endpoint
        and key (``s3.reader``), never this section's read-write key. Every client takes them as it takes these."""
        r = self.reader
        return self.model_copy(update={
            "host": r.host, "port": r.port, "endpoint": r.endpoint or self.endpoint, "access_key_id": r.access_key_id,
            "secret_access_key": r.secret_access_key, "secret_access_key_file": r.secret_access_key_file,
            "session_token": r.session_token, "session_token_file": r.session_token_file})

    @property
    def url(self) -> str:
        """The endpoint URL clients talk to."""
        return self.endpoint or f"http://{self.host}:{self.port}"

    @property
    def default_chain(self) -> bool:
        """No key configured (nor its file) for a remote endpoint: every client takes its SDK's default chain.
        Decided from the settings alone, with no file read, so a machine without the credentials can tell."""
        return self.secret_access_key is None and self.secret_access_key_file is None and self.endpoint is not None

    def _secret_key(self) -> SecretStr | None:
        """The secret access key: configured (its file first), else generated for the local object store."""
        configured = _read_secret(None, self.secret_access_key_file) or self.secret_access_key
        if configured is None and self.endpoint is None and self.generated_secrets_dir is not None:
            configured = generated_secret(self.generated_secrets_dir / f"s3-{self.access_key_id}")
        return configured

    def secret(self) -> str:
        """The secret access key, for what needs one (the local object store's own credential)."""
        configured = self._secret_key()
        if configured is None:
            raise ConfigError(f"s3.secret_access_key (LOANRISK_S3__SECRET_ACCESS_KEY) or its _file is needed for "
                              f"{self.url}")
        return configured.get_secret_value()

    def credentials(self) -> S3Credentials | None:
        """The keys every client is given, or None: no secret key configured, so the SDK's default chain applies.

        The session token is read like the secret key (its file first), at every call, so a rotated file is
        picked up by the next client made.
        """
        secret = self._secret_key()
        if secret is None:
            return None
        token = _read_secret(None, self.session_token_file) or self.session_token
        return S3Credentials(self.access_key_id, secret.get_secret_value(),
                             (token.get_secret_value() or None) if token is not None else None)

    def iceberg_credentials(self) -> dict[str, str]:
        """The keys as Iceberg FileIO properties; none when unset, so the FileIO takes the SDK's default chain."""
        keys = self.credentials()
        if keys is None:
            return {}
        props = {"s3.access-key-id": keys.access_key_id, "s3.secret-access-key": keys.secret_access_key}
        if keys.session_token:
            props["s3.session-token"] = keys.session_token
        return props


class CatalogSettings(BaseModel):
    """The Iceberg catalog: JDBC (PostgreSQL) shared by Flink and pyiceberg; same name on both sides."""

    name: str = "lake"
    namespace: str = "risk"

    def warehouse(self, s3: S3Settings) -> str:
        """The warehouse location on the object store."""
        return f"s3://{s3.bucket}/lake"


class SnowflakeSettings(BaseModel):
    """Snowflake: the local endpoint (fakesnow server) by default, or a real account."""

    host: str = LOOPBACK
    port: int = Field(8085, ge=1, le=65535)
    protocol: Literal["http", "https"] = "http"
    account: str = "local"
    user: str = "loader"
    password: SecretStr = SecretStr("local")
    private_key_file: Path | None = None
    role: str = "RISK_LOADER"
    warehouse: str = "RISK_WH"
    database: str = "LOANRISK"
    schema_name: str = Field("RISK", alias="schema")
    local: bool = True
    analyst_role: str = Field("RISK_ANALYST", description="Read-only role the warehouse DDL grants SELECT to.")
    batch_rows: int = Field(50_000, ge=1, description="Rows per loader batch (one staged file, one MERGE).")
    follow_interval_s: float = Field(60.0, gt=0, description="Seconds between syncs of `warehouse sync --follow`.")

    model_config = {"populate_by_name": True}


class PrefectSettings(BaseModel):
    """The Prefect server (started with the stack behind a flag) and its API URL."""

    enabled: bool = False
    host: str = LOOPBACK
    port: int = Field(4200, ge=1, le=65535)
    api_url: str | None = None
    failure_webhook: str | None = Field(None, description="URL a failed flow run is POSTed to (JSON); unset: log only.")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Timeout of the failure webhook POST.")
    task_retries: int = Field(3, ge=0, le=20, description="Retries of a flow task that raised (exponential backoff).")
    retry_delay_s: float = Field(10.0, ge=0, description="First retry delay of a task; doubles on every retry.")
    task_timeout_s: float = Field(1800.0, gt=0, description="A task running longer than this fails (and is retried).")
    snapshot_min_age_h: float = Field(6.0, ge=1, description="maintain_lake and the hourly expire_snapshots never "
                                      "expire snapshots younger than this.")
    orphan_min_age_h: float = Field(24.0, ge=1, description="maintain_lake deletes unreferenced files only older than this.")
    compaction_file_mb: int = Field(32, ge=1, le=1024, description="Lake compaction (hourly compact_lake, daily "
                                    "maintain_lake) rewrites data files under three quarters of this size, in runs of "
                                    "up to this many MB of Parquet, one new file each; a run is held in memory as "
                                    "Arrow (many times larger: docs/PERFORMANCE.md) while it is rewritten.")
    run_retention_days: float = Field(30.0, gt=1 / 24, description="The Prefect server's own database vacuum deletes "
                                      "flow runs that ended longer ago than this, with their task runs, states and "
                                      "logs (Prefect's minimum is an hour).")
    vacuum_interval_s: float = Field(3600.0, gt=0, description="How often the Prefect server's database vacuum "
                                     "looks for flow runs past prefect.run_retention_days.")

    @property
    def url(self) -> str:
        """The Prefect API URL."""
        return self.api_url or f"http://{self.host}:{self.port}/api"


class PrometheusSettings(BaseModel):
    """Prometheus, scraping Flink's Prometheus reporter."""

    host: str = LOOPBACK
    port: int = Field(9090, ge=1, le=65535)
    scrape_interval_s: int = Field(5, ge=1)

    @property
    def url(self) -> str:
        """Base URL of the Prometheus HTTP API."""
        return f"http://{self.host}:{self.port}"

    @property
    def exporter_port(self) -> int:
        """Port of our own exporter (Kafka consumer lag), scraped as job "loanrisk": the next one."""
        return self.port + 1


class AlertingSettings(BaseModel):
    """Alertmanager, receiving the alert rules' alerts from Prometheus and routing them to one webhook."""

    # Not Alertmanager's usual 9093: that is the local Kafka's controller port.
    port: int = Field(9095, ge=1, le=65535)
    webhook_url: SecretStr | None = Field(
        None, description="Where every alert is POSTed (Alertmanager's webhook format); unset: alerts stay in "
                          "Alertmanager's UI. A secret because such URLs often carry a token")
    webhook_url_file: Path | None = Field(None, description="File holding webhook_url, read at stack start")
    group_wait_s: int = Field(10, ge=0, description="Wait before the first notification of a new alert group")
    group_interval_s: int = Field(60, ge=1, description="Wait before notifying alerts added to a notified group")
    repeat_interval_h: float = Field(4.0, gt=0, description="Resend a still-firing alert this often")
    rule_for_max_s: int | None = Field(
        None, ge=0, description="Cap every alert rule's `for:` at this many seconds: for tests that compress "
                                "live time; unset keeps the rules as written")

    @property
    def url(self) -> str:
        """Base URL of Alertmanager's HTTP API and UI."""
        return f"http://{LOOPBACK}:{self.port}"

    def webhook(self) -> str | None:
        """The webhook URL, read from its file when only the file is configured."""
        value = _read_secret(self.webhook_url, self.webhook_url_file)
        return value.get_secret_value() if value else None


class GrafanaSettings(BaseModel):
    """A real Grafana that `riskctl dashboards publish` pushes datasources and dashboards to."""

    url: str | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    folder: str = "loan-risk"

    def api_token(self) -> str | None:
        """The service-account token: GRAFANA_TOKEN in the environment wins over the settings."""
        env = os.environ.get("GRAFANA_TOKEN")
        if env:
            return env
        value = _read_secret(self.token, self.token_file)
        return value.get_secret_value() if value else None


class ModelSettings(BaseModel):
    """Model registry location and scoring thresholds."""

    registry_uri: str | None = None
    poll_interval_s: float = Field(10.0, gt=0)
    alert_threshold: float = Field(0.5, ge=0, le=1)
    lgd: float = Field(0.45, ge=0, le=1)
    promotion_margin: float = Field(0.005, ge=0)
    max_model_bytes: int = Field(DEFAULT_MAX_MODEL_BYTES, ge=1024, description="Largest model file (model.onnx) the "
                                 "stream's and the API's scorers download; a larger one is refused without being read "
                                 "whole, and `riskctl model promote`/`rollback` refuse it")
    monotonic: bool = Field(True, description="Train under the directions contracts/features.py declares (higher "
                            "utilisation, debt-to-income, delinquencies never lower P(default)): the retrain flow, the "
                            "first champion of an empty registry, and `riskctl model train|backtest` unless "
                            "--monotonic/--no-monotonic says otherwise (docs/MODELS.md, 'Monotonic constraints')")
    shadow_auc_se_k: float = Field(2.0, ge=0, description="Shadow promotion rule: a challenger's ROC AUC gain over "
                                   "the champion on the same loans must exceed this many paired-bootstrap standard "
                                   "errors (docs/MODELS.md, 'Shadow challengers')")
    shadow_max_ece_increase: float = Field(0.01, ge=0, description="Shadow promotion rule: the most a challenger's "
                                           "expected calibration error may exceed the champion's on the same loans")
    shadow_min_defaults: int = Field(10, ge=1, description="Shadow promotion rule: matured defaults the paired "
                                     "loans must hold before a challenger can be promoted")
    shadow_bootstrap: int = Field(1000, ge=100, description="Paired bootstrap resamples of the shadow comparison's "
                                  "standard errors and intervals")

    def registry(self, s3: S3Settings) -> str:
        """Registry root: ``s3://bucket/models`` on the object store unless overridden."""
        return self.registry_uri or f"s3://{s3.bucket}/models"


class ApiSettings(BaseModel):
    """The synchronous scoring API (`riskctl serve`): where it listens, its decision bands and its limits."""

    enabled: bool = Field(False, description="Start the scoring API with the local stack (`riskctl stack up --with-api`)")
    host: str = Field(LOOPBACK, description="Address the scoring API listens on (loopback: put a TLS proxy in "
                      "front of it to serve other machines)")
    port: int = Field(8090, ge=1, le=65535, description="Port the scoring API listens on")
    approve_below: float = Field(0.1, ge=0, le=1, description="Decision band: a probability of default below this "
                                 "is approve")
    decline_at: float = Field(0.3, ge=0, le=1, description="Decision band: a probability at or above this is "
                              "decline; between approve_below and this is refer")
    max_body_bytes: int = Field(262_144, ge=1024, description="Largest request body accepted; a larger one is "
                                "refused with 413 before it is read whole")
    max_batch: int = Field(100, ge=1, le=10_000, description="Most applications one POST /v1/score:batch may carry")
    rate_limit_per_s: float = Field(50.0, gt=0, description="Requests per second each API key may make on average "
                                    "(token bucket); more get 429 with Retry-After")
    rate_limit_burst: int = Field(100, ge=1, description="Requests an API key may make at once above its rate "
                                  "(the token bucket's size)")
    request_timeout_s: float = Field(2.0, gt=0, description="A scoring request not answered within this gets 504; "
                                     "no application of it is handed to Kafka after that")
    publish_default: bool = Field(False, description="Publish each scored application to the loan-applications "
                                  "topic unless the request says publish=false")
    idempotency_ttl_s: int = Field(86_400, ge=60, description="How long the answer to an Idempotency-Key is kept "
                                   "and replayed")
    key_cache_s: float = Field(5.0, ge=0, description="Seconds a verified API key is trusted before the serving "
                               "database is asked again: a revocation takes effect within this")
    store_connect_timeout_s: int = Field(2, ge=2, le=60, description="Connect timeout to the serving database "
                                         "(libpq's minimum is 2 s)")
    store_retry_s: float = Field(1.0, ge=0, description="After the serving database failed, requests answer 503 at "
                                 "once for this long before it is tried again")
    store_pool_size: int = Field(4, ge=1, le=64, description="Connections the API keeps open to the serving database")

    @model_validator(mode="after")
    def _bands_in_order(self) -> ApiSettings:
        if self.approve_below > self.decline_at:
            raise ValueError(f"api.approve_below ({self.approve_below}) must not be above api.decline_at "
                             f"({self.decline_at})")
        return self

    def decision(self, probability: float) -> str:
        """The decision band of a probability of default: approve, refer or decline."""
        if probability < self.approve_below:
            return "approve"
        return "refer" if probability < self.decline_at else "decline"


class PrivacySettings(BaseModel):
    """Pseudonymisation of PII fields (HMAC-SHA256) before any sink."""

    pii_hash_key: SecretStr | None = Field(
        None, description="HMAC key for PII pseudonyms; unset with no file: a random key generated once per "
                          "installation (state_dir/secrets/pii-hash-key)")
    pii_hash_key_file: Path | None = Field(
        None, description="File holding the HMAC key, read by the TaskManagers (a mounted secret on a cluster)")
    pii_key_id: str = Field("k1", pattern=r"^[A-Za-z0-9_-]{1,16}$",
                            description="Prefix of every pseudonym, naming the key; change it with the key")
    erasure_deadline_days: float = Field(
        30, gt=0, description="Days within which an erasure request reaches every store (GDPR: one month); "
        "the Kafka topics, which cannot delete one customer, must forget every message within it")

    def key(self) -> str | None:
        """The configured HMAC key (from the setting or its file), or None when the installation generates one."""
        value = _read_secret(self.pii_hash_key, self.pii_hash_key_file)
        return value.get_secret_value() if value is not None else None


class KubernetesSettings(BaseModel):
    """The risk job on Kubernetes under the Flink Kubernetes Operator (`riskctl k8s render`, docs/KUBERNETES.md)."""

    service_account: str | None = Field(
        None, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Kubernetes ServiceAccount the Flink pods run as, your own: it needs the rights of the operator "
        "chart's `flink` Role and, for a pod role, the role's annotation. Unset: with S3 keys the chart's `flink`; "
        "with none (s3.endpoint and no secret key: a pod role), one the render writes, named after the job")
    role_arn: str | None = Field(
        None, pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$",
        description="IAM role the Flink pods assume through EKS IAM roles for service accounts (IRSA): the "
        "eks.amazonaws.com/role-arn annotation of the ServiceAccount the render writes. Only without S3 keys and "
        "without kubernetes.service_account")


class StackSettings(BaseModel):
    """The local stack: where its state lives and how its processes log."""

    state_dir: Path = REPO_ROOT / ".loanrisk"
    install_dir: Path = REPO_ROOT / ".loanrisk"
    log_format: Literal["text", "json"] = "text"
    health_timeout_s: float = Field(120.0, gt=0)
    supervise: bool = True


class _YamlSource(PydanticBaseSettingsSource):
    """Reads ``loanrisk.yaml`` (or ``$LOANRISK_CONFIG``) as the lowest-priority non-default source."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = Path(os.environ.get("LOANRISK_CONFIG", "loanrisk.yaml"))
        if not path.exists():
            if "LOANRISK_CONFIG" in os.environ:
                raise ConfigError(f"LOANRISK_CONFIG points to {path}, which does not exist")
            return {}
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (kafka:, flink:, ...)")
        return data


class Settings(BaseSettings):
    """Everything configurable in loan-risk, one section per component."""

    model_config = SettingsConfigDict(env_prefix="LOANRISK_", env_nested_delimiter="__", extra="forbid")

    stack: StackSettings = StackSettings()
    kafka: KafkaSettings = KafkaSettings()
    flink: FlinkSettings = FlinkSettings()
    postgres: PostgresSettings = PostgresSettings()
    s3: S3Settings = S3Settings()
    catalog: CatalogSettings = CatalogSettings()
    snowflake: SnowflakeSettings = SnowflakeSettings()
    prefect: PrefectSettings = PrefectSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    alerting: AlertingSettings = AlertingSettings()
    grafana: GrafanaSettings = GrafanaSettings()
    model: ModelSettings = ModelSettings()
    privacy: PrivacySettings = PrivacySettings()
    api: ApiSettings = ApiSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return init_settings, env_settings, _YamlSource(settings_cls), file_secret_settings

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        k = self.kafka
        ports = {"kafka.port": k.port, "kafka.controller_port": k.controller_port, "kafka.admin_port": k.admin_port,
                 "kafka.tls_port": k.tls_port}
        taken: dict[int, str] = {}
        for name, port in ports.items():
            if port is None:
                continue
            if port in taken:
                raise ValueError(f"{taken[port]} and {name} must differ")
            taken[port] = name
        return self

    @model_validator(mode="after")
    def _generated_secrets_in_the_state_folder(self) -> Settings:
        for section in (self.postgres, self.s3, self.kafka):
            if section.generated_secrets_dir is None:
                section.generated_secrets_dir = self.state_dir / "secrets"
        return self

    @model_validator(mode="after")
    def _topics_forget_within_the_erasure_deadline(self) -> Settings:
        life_days = self.kafka.topics.longest_life_ms() / 86_400_000
        if life_days > self.privacy.erasure_deadline_days:
            raise ValueError(
                f"kafka.topics.retention_hours ({self.kafka.topics.retention_hours:g} h) keeps a message up to "
                f"{life_days:.1f} days (retention plus a quarter for the segment roll), longer than "
                f"privacy.erasure_deadline_days ({self.privacy.erasure_deadline_days:g}): the input topics hold raw "
                f"PII, so lower the retention to at most {self.privacy.erasure_deadline_days * 24 / 1.25:g} h")
        return self

    @model_validator(mode="after")
    def _restore_points_go_within_the_erasure_deadline(self) -> Settings:
        if self.flink.restore_point_retention_days > self.privacy.erasure_deadline_days:
            raise ValueError(
                f"flink.restore_point_retention_days ({self.flink.restore_point_retention_days:g}) is longer than "
                f"privacy.erasure_deadline_days ({self.privacy.erasure_deadline_days:g}): checkpoints and savepoints "
                "hold customer ids, so keep them at most as long as the erasure deadline")
        return self

    # -- derived locations -------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        """Root of all local state (`.loanrisk/` by default)."""
        return self.stack.state_dir.resolve()

    @property
    def install_dir(self) -> Path:
        """Where setup puts the environments, jars and FLINK_HOME (shared by every stack)."""
        return self.stack.install_dir.resolve()

    @property
    def flink_home(self) -> Path:
        """FLINK_HOME laid out by setup: the pyflink wheel's Flink plus the pinned jars."""
        return self.install_dir / "flink"

    @property
    def cluster_flink_home(self) -> Path:
        """FLINK_HOME of the local cluster's processes: the client's, or the bare one (flink.cluster_home)."""
        return self.install_dir / "flink-bare" if self.flink.cluster_home == "bare" else self.flink_home

    @property
    def flink_conf_dir(self) -> Path:
        """FLINK_CONF_DIR of this stack (its ports and state folders)."""
        return self.state_dir / "flink" / "conf"

    @property
    def flink_python(self) -> Path:
        """Interpreter of the Flink runtime environment."""
        return self.install_dir / "venvs" / "flink" / "bin" / "python"

    def iceberg_catalog_properties(self) -> dict[str, str]:
        """pyiceberg SqlCatalog properties; Flink's catalog DDL is derived from the same values."""
        return {
            "type": "sql",
            "uri": self.postgres.sqlalchemy_url(self.postgres.catalog_db),
            "warehouse": self.catalog.warehouse(self.s3),
            "s3.endpoint": self.s3.url,
            "s3.region": self.s3.region,
            "s3.force-virtual-addressing": "false" if self.s3.path_style else "true",
            **self.s3.iceberg_credentials(),
        }


def describe_validation_error(exc: ValidationError, section: str | None = None) -> str:
    """One line naming the setting, its environment variable and what is wrong (``section``: the settings section
    of the model that refused it, when that was a section's model and not Settings)."""
    err = exc.errors()[0]
    loc = (section, *err["loc"]) if section else tuple(err["loc"])
    path = ".".join(str(p) for p in loc)
    env = "LOANRISK_" + "__".join(str(p).upper() for p in loc)
    return f"invalid setting {path} ({env}): {err['msg']}"


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (``X`` or ``X | None``), None for a plain value."""
    import typing
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def unknown_variable(environ: Any) -> str | None:
    """The first ``LOANRISK_<SECTION>__<FIELD>`` variable of ``environ`` that names no setting, as one line.

    pydantic-settings reads only the variables of known fields, so a misspelt or retired one would
    otherwise be ignored without a word while the default it meant to replace stays in force.
    Variables without ``__`` (LOANRISK_CONFIG, the tests' own) are not settings and pass.
    """
    for key in sorted(environ):
        if not key.startswith("LOANRISK_") or "__" not in key:
            continue
        model: type[BaseModel] = Settings
        path: list[str] = []
        for part in key.removeprefix("LOANRISK_").lower().split("__"):
            fields = {**{n: f for n, f in model.model_fields.items()},
                      **{f.alias: f for f in model.model_fields.values() if f.alias}}
            if part not in fields:
                missing = f"{'.'.join(path)} has no {part!r}" if path else f"there is no section {part!r}"
                return (f"{key} names no setting: {missing} (there are {', '.join(model.model_fields)}; "
                        "docs/CONFIGURATION.md)")
            path.append(part)
            inner = _section_model(fields[part].annotation)
            if inner is None:
                break  # a value (a mapping may take keys of its own)
            model = inner
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; raises ConfigError with one clear line when they are invalid."""
    problem = unknown_variable(os.environ)
    if problem:
        raise ConfigError(problem)
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def override(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """A copy of ``settings`` with some fields of some sections replaced: ``override(s, flink={"scorer": "builtin"})``.

    The way to hand adjusted settings on: changing ``os.environ`` and clearing the cache would reach every
    other reader in the process too.
    """
    updates = {}
    for name, fields in sections.items():
        section = getattr(settings, name, None)
        if name not in Settings.model_fields or not isinstance(section, BaseModel):
            raise ConfigError(f"no settings section {name!r}; sections: {', '.join(Settings.model_fields)}")
        unknown = sorted(set(fields) - set(type(section).model_fields))
        if unknown:
            raise ConfigError(f"no setting {name}.{unknown[0]}; {name} has {', '.join(type(section).model_fields)}")
        # Validated as a configured value would be (a str becomes a SecretStr or a Path, a bad value is refused).
        updates[name] = type(section).model_validate({**dict(section), **fields})
    return settings.model_copy(update=updates)
