"""Security on the real stack: password auth on, secrets only from files, no secret in any log, least privilege.

The session stack (tests/conftest.py) runs with PostgreSQL scram-sha-256, Kafka's SASL/SCRAM (the default) and
distinctive secrets read from files: the PostgreSQL writer and reader passwords, the S3 secret key, the PII hash
key and the platform's Kafka password.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from loanrisk.settings import KafkaSettings, S3Settings, Settings
from jobs.params import RISK_JOB_NAME
from stack.flink_conf import checkpoint_dir
from tests.stack.conftest import RiskRun
from tests.stack.reliability_helpers import file_sizes, files_containing, files_under

pytestmark = pytest.mark.stack


def _secrets(s: Settings) -> dict[str, str]:
    """The configured secret values, by name (each read from its file)."""
    values = {"postgres writer password": s.postgres.secret(), "postgres reader password": s.postgres.reader_secret(),
              "s3 secret key": s.s3.secret(), "s3 registry readers' key": s.s3.for_readers().secret(),
              "pii hash key": s.privacy.key(), "kafka platform password": s.kafka.sasl_secret(),
              "kafka analyst password": s.kafka.sasl_secret(s.kafka.analyst_username)}
    return {k: v for k, v in values.items() if v}


def test_postgres_requires_a_password_and_the_secrets_come_from_files(stack_settings: Settings) -> None:
    pg = stack_settings.postgres
    if pg.auth != "scram-sha-256":
        pytest.skip("this session runs PostgreSQL with trust authentication")
    assert pg.password is None and pg.password_file is not None, "the password must come from a file"
    assert stack_settings.s3.secret_access_key_file is not None and stack_settings.privacy.pii_hash_key_file is not None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"host={pg.host} port={pg.port} dbname={pg.serving_db} user={pg.user}", connect_timeout=5)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"host={pg.host} port={pg.port} dbname={pg.serving_db} user={pg.user} password=wrong",
                        connect_timeout=5)
    with psycopg.connect(pg.dsn(pg.serving_db)) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == pg.user
    print(f"\nPostgreSQL: scram-sha-256 on 127.0.0.1:{pg.port}; no password and a wrong one are refused")


def test_the_serving_reader_role_reads_but_cannot_change_anything(risk_run: RiskRun) -> None:
    pg = risk_run.settings.postgres
    with psycopg.connect(pg.dsn(pg.serving_db, reader=True), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == pg.reader_user
        assert conn.execute("SELECT count(*) FROM loan_scores_latest").fetchone()[0] > 0
        refused = []
        for statement in ("DELETE FROM loan_scores_latest", "UPDATE loan_scores_latest SET probability = 0",
                          "INSERT INTO repeated_events VALUES ('t', 'e', 1, now())", "CREATE TABLE mine (a int)",
                          "TRUNCATE risk_by_window", "DROP TABLE loan_outcomes"):
            try:
                conn.execute(statement)
            except psycopg.errors.InsufficientPrivilege:
                refused.append(statement.split()[0])
    assert refused == ["DELETE", "UPDATE", "INSERT", "CREATE", "TRUNCATE", "DROP"]
    print(f"\nreader role {pg.reader_user}: SELECT works; refused: {refused}")


def test_no_log_the_stack_writes_contains_a_secret(risk_run: RiskRun, stack_settings: Settings) -> None:
    """Runs after the risk job: JobManager, TaskManager (UDF workers), submit, catalog and service logs. The
    session's secrets, and the PII key the outage test rotated to (risk_run.settings), are searched."""
    s, risk_job_id = risk_run.settings, risk_run.job_id
    first = _secrets(stack_settings)
    secrets = first | {f"{name} (rotated)": v for name, v in _secrets(s).items() if v not in first.values()}
    assert len(secrets) >= 3, "the session should configure distinctive secrets (tests/conftest.py)"
    logs = s.state_dir / "logs"
    files = files_under(logs)
    size = file_sizes(files)
    hits = files_containing(logs, secrets)
    print(f"\nsearched {len(files)} log files ({size / 1e6:.1f} MB) for {len(secrets)} secrets: {sorted(secrets)}")
    assert not hits, hits
    # The same values must not be readable through Flink's REST API (what the web UI shows): the job's
    # configuration, its plan (every operator's SQL), the cluster's configuration.
    from stack.flink_client import rest
    exposed = {path: json.dumps(rest(s, path)) for path in (f"/jobs/{risk_job_id}/config", f"/jobs/{risk_job_id}/plan",
                                                            f"/jobs/{risk_job_id}", "/jobmanager/config")}
    assert "pii_hash(" in exposed[f"/jobs/{risk_job_id}/plan"] or "PiiHash" in exposed[f"/jobs/{risk_job_id}/plan"], \
        "the plan no longer shows the pseudonymisation: this check would search the wrong document"
    leaked = sorted((name, path) for name, value in secrets.items() for path, text in exposed.items() if value in text)
    print(f"Flink REST job configuration, plan, job and cluster configuration: "
          f"{'leaks ' + str(leaked) if leaked else 'no secret'}")
    assert not leaked, leaked
    # Nor in a checkpoint: the job's state and metadata, every file of every retained checkpoint.
    checkpoints = Path(checkpoint_dir(s, RISK_JOB_NAME).removeprefix("file://"))
    files = files_under(checkpoints)
    assert files, f"no checkpoint under {checkpoints}: this check would search nothing"
    in_checkpoints = files_containing(checkpoints, secrets)
    print(f"searched {len(files)} checkpoint files ({file_sizes(files) / 1e6:.1f} MB): "
          f"{in_checkpoints or 'no secret'}")
    assert not in_checkpoints, in_checkpoints


def _certificates(folder: Path) -> tuple[Path, Path]:
    """A throw-away CA and a broker certificate for 127.0.0.1 signed by it: (ca.pem, broker keystore PEM)."""
    import subprocess
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=loanrisk-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "broker.pem", "-days", "2", "-extfile", "san.ext")
    run("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.p8")
    keystore = folder / "broker-keystore.pem"
    keystore.write_text((folder / "broker.p8").read_text() + (folder / "broker.pem").read_text()
                        + (folder / "ca.pem").read_text())
    return folder / "ca.pem", keystore


FLINK_OVER_TLS = """
import sys
from pyflink.table import EnvironmentSettings, TableEnvironment
bootstrap, security, source, sink = sys.argv[1:5]
t = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
t.get_config().set("parallelism.default", "1")
for name, topic, extra in (("src", source, "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', "
                                            "'properties.group.id' = 'tls-test', "), ("dst", sink, "")):
    t.execute_sql(f"CREATE TABLE {name} (payload STRING) WITH ('connector' = 'kafka', 'topic' = '{topic}', "
                  f"'properties.bootstrap.servers' = '{bootstrap}', {security} {extra} 'format' = 'raw')")
t.execute_sql("INSERT INTO dst SELECT payload FROM src").wait()
print("flink job over TLS finished")
"""


def test_the_pipeline_runs_over_a_kafka_tls_listener_with_certificates_made_by_the_test(
        stack_settings: Settings, tmp_path: Path) -> None:
    import os
    import random
    import subprocess
    import time

    from confluent_kafka.admin import AdminClient

    from ingestion.consumer import EventConsumer
    from ingestion.generator import GeneratorConfig, generate
    from ingestion.producer import make_producer, produce_events
    from loanrisk.settings import KafkaSettings
    from jobs.params import kafka_security_options
    from stack.isolated import free_port_block
    from stack.java import java_home
    from stack.services.kafka import KafkaBroker, ensure_topics

    ca, keystore = _certificates(tmp_path / "certs")
    port = free_port_block(4, random.Random(os.getpid() + 7))
    settings = Settings(stack={"state_dir": tmp_path / "tls-stack", "install_dir": stack_settings.install_dir},
                        kafka={"port": port, "controller_port": port + 1, "admin_port": port + 2,
                               "tls_port": port + 3, "tls_keystore_file": keystore})
    broker = KafkaBroker(settings)
    broker.start(timeout_s=180)
    try:
        k = settings.kafka
        # The TLS listener's clients log in as the platform's do: SCRAM inside TLS (SASL_SSL).
        tls = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port + 3}", security_protocol="SASL_SSL", ssl_cafile=ca,
                            sasl_password=k.sasl_secret())
        topics = ["tls-in", "tls-out"]
        ensure_topics(k, topics, 1, k.topics.topic_config(k.max_message_bytes))
        sent = [m for m in generate(GeneratorConfig(seed=31, customers=5, history_months=0))][:300]
        sent = [type(m)("tls-in", m.key, m.value_bytes, m.event_id, m.kind, m.event_time_ms) for m in sent]
        summary = produce_events(iter(sent), make_producer(kafka=tls))
        assert summary.delivered == len(sent) and summary.failed == 0

        # A client that does not speak TLS gets nothing from the TLS port.
        plain = AdminClient({"bootstrap.servers": tls.bootstrap, "socket.timeout.ms": 3000, "log_level": 0})
        with pytest.raises(Exception):  # noqa: B017 - librdkafka's error or ours
            if not plain.list_topics(timeout=5).brokers:
                raise RuntimeError("no brokers")

        # Flink's Kafka connector with the options the risk job gets (kafka_security_options), over TLS.
        conf = tmp_path / "flink-conf"
        conf.mkdir()
        (conf / "config.yaml").write_text("rest.bind-port: '0'\nparallelism.default: 1\n")
        started = time.monotonic()
        proc = subprocess.run([str(stack_settings.flink_python), "-c", FLINK_OVER_TLS, tls.bootstrap,
                               kafka_security_options(tls), "tls-in", "tls-out"], capture_output=True, text=True,
                              timeout=600, env={**os.environ, "FLINK_HOME": str(stack_settings.flink_home),
                                                "FLINK_CONF_DIR": str(conf), "JAVA_HOME": str(java_home()),
                                                "FLINK_LOG_DIR": str(tmp_path / "flink-logs")})
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        with EventConsumer(["tls-out"], group_id="tls-check", kafka=tls, read_committed=True) as consumer:
            received = consumer.read(len(sent), idle_timeout_s=20)
        assert sorted(r.value for r in received) == sorted(m.value_bytes for m in sent)
        print(f"\nKafka TLS listener 127.0.0.1:{port + 3} (test CA, SCRAM inside): {len(sent)} events produced over "
              f"TLS, copied by a Flink job over TLS in {time.monotonic() - started:.0f}s, consumed over TLS; "
              "PLAINTEXT refused")
    finally:
        broker.stop()


def test_every_topic_forgets_its_messages_within_the_erasure_deadline_and_the_lag_exporter_reports_unread_ones(
        stack_settings: Settings) -> None:
    """Kafka cannot delete one customer's messages, so every platform topic must forget all of them in time.

    The platform topics carry the configured retention, segment roll and file delete delay; the same
    configuration with a retention of seconds (live time compressed: the roll and the delete delay scale
    with it) shows the broker really removes a seeded customer's bytes from its log files.

    The same retention deletes records a stopped job has not read. A consumer group that committed offset 0 of the
    topic stands for the job: the lag exporter, pointed at them, ages the oldest unread record by its timestamp
    (what LoanRiskBacklogNearRetention compares with the retention), then counts every record as deleted unread
    (LoanRiskUnreadRecordsDeleted).
    """
    import secrets
    import time

    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource

    from loanrisk.settings import TopicSettings, override
    from stack.lag_exporter import ConsumerLagCollector
    from stack.services.kafka import admin_config, drop_topics, ensure_topics
    from tests.stack.reliability_helpers import wait_until

    k = stack_settings.kafka
    admin = AdminClient(admin_config(k))  # the platform's user may not read topic configurations
    wanted = {key: value for key, value in k.topics.topic_config(k.max_message_bytes).items()
              if key in ("retention.ms", "segment.ms", "file.delete.delay.ms")}
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in k.topics.all()])
    for resource, future in described.items():
        config = future.result(timeout=30)
        assert {key: config[key].value for key in wanted} == wanted, resource.name
    deadline_ms = stack_settings.privacy.erasure_deadline_days * 86_400_000
    assert k.topics.longest_life_ms() <= deadline_ms

    short = TopicSettings(retention_hours=5 / 3600)
    topic = f"retention-check-{secrets.token_hex(4)}"
    ensure_topics(k, [topic], 1, short.topic_config(k.max_message_bytes))
    name = f"Quillon Forgettable-{secrets.token_hex(6)}".encode()
    producer = Producer(k.client_config())
    sent = time.time()
    for i in range(20):
        producer.produce(topic, key=b"c1", value=b'{"full_name": "' + name + b'", "n": %d}' % i)
    assert producer.flush(30) == 0
    group = f"{topic}-reader"
    reader = Consumer({**k.client_config(), "group.id": group, "enable.auto.commit": False})
    reader.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    reader.close()
    exporter = ConsumerLagCollector(override(stack_settings, kafka={"topics": short.model_copy(
        update={"applications": topic, "transactions": f"{topic}-none", "repayments": f"{topic}-none"})},
        flink={"consumer_group": group}))

    def scraped() -> dict[str, float]:
        return {sample.name: sample.value for family in exporter.collect() for sample in family.samples
                if sample.labels.get("topic", topic) == topic}
    unread = scraped()
    print(f"\nthe lag exporter before the retention passed: {unread}")
    assert (unread["loanrisk_kafka_up"], unread["loanrisk_kafka_consumer_lag"],
            unread["loanrisk_kafka_unread_deleted"], unread["loanrisk_kafka_retention_seconds"]) == (1, 20, 0, 5)
    assert 0 <= unread["loanrisk_kafka_oldest_unread_age_seconds"] <= time.time() - sent + 1
    logs = stack_settings.state_dir / "kafka" / "data"

    def on_disk() -> bool:
        return any(name in p.read_bytes() for p in logs.glob(f"{topic}-*/*") if p.is_file())

    assert on_disk(), f"the seeded messages are not in {logs}/{topic}-*: this check would prove nothing"
    started = time.monotonic()
    try:
        wait_until(lambda: not on_disk(), 300, f"the broker removing {topic}'s expired messages from disk", every_s=3)
        gone = scraped()
    finally:
        drop_topics(k, [topic])
    print(f"the lag exporter after: {gone}")
    assert (gone["loanrisk_kafka_log_start_offset"], gone["loanrisk_kafka_unread_deleted"],
            gone["loanrisk_kafka_consumer_lag"], gone["loanrisk_kafka_oldest_unread_age_seconds"]) == (20, 20, 0, 0)
    print(f"\ntopics keep messages {k.topics.retention_hours:g} h (+ segment roll and file delete delay: at most "
          f"{k.topics.longest_life_ms() / 3_600_000:g} h) within an erasure deadline of "
          f"{stack_settings.privacy.erasure_deadline_days:g} days; with 5 s retention the broker removed the seeded "
          f"bytes from its log files {time.monotonic() - started:.0f}s after they were written")


BOMB_PRODUCER = """
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;

public class BombProducer {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        for (int i = 3; i < args.length; i++) {  // the platform's login: key=value pairs
            String[] kv = args[i].split("=", 2);
            p.put(kv[0], kv[1]);
        }
        p.put("compression.type", "zstd");
        p.put("max.request.size", String.valueOf(Integer.MAX_VALUE));
        p.put("buffer.memory", String.valueOf(3L << 30));
        p.put("acks", "all");
        p.put("retries", "0");
        p.put("key.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        p.put("value.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        byte[] value = new byte[Integer.parseInt(args[2])];
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            long offset = producer.send(new ProducerRecord<>(args[1], "bomb".getBytes(), value)).get().offset();
            System.out.println("ACCEPTED at offset " + offset);
        } catch (ExecutionException e) {
            System.out.println("REFUSED " + e.getCause().getClass().getSimpleName() + ": " + e.getCause().getMessage());
        }
    }
}
"""


def test_a_compressed_record_expanding_past_the_limit_is_refused_by_the_broker(risk_run: RiskRun,
                                                                                tmp_path: Path) -> None:
    """A decompression bomb (a record of 1.1 GiB of zeros, zstd-compressed to kilobytes) sent to an input topic
    by the Java client is refused at produce time (the topics' max.decompressed.message.bytes); a compressed
    record within the limit is accepted by the same program; the job never sees the bomb and does not restart."""
    import secrets
    import subprocess

    from stack.java import java_bin
    from stack.services.kafka import KafkaBroker, drop_topics, ensure_topics
    from stack.flink_client import all_tasks_running
    from tests.stack.reliability_helpers import restarts

    s = risk_run.settings
    k = s.kafka
    source = tmp_path / "BombProducer.java"
    source.write_text(BOMB_PRODUCER)
    classpath = KafkaBroker(s).classpath
    # Logged in as the platform's user (the broker's own Kafka client: its login module is not relocated).
    login = [f"{key}={value.replace('org.apache.flink.kafka.shaded.', '')}" for key, value in k.java_properties().items()]

    def send(topic: str, size: int) -> str:
        out = subprocess.run([java_bin(), "-Xmx4g", "-cp", classpath, str(source), k.bootstrap, topic, str(size),
                              *login], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip().splitlines()[-1]

    before = restarts(s, risk_run.job_id)
    within = f"bomb-check-{secrets.token_hex(4)}"
    ensure_topics(k, [within], 1, k.topics.topic_config(k.max_message_bytes))
    try:
        small = send(within, k.max_message_bytes // 2)
    finally:
        drop_topics(k, [within])
    bomb = send(k.topics.applications, 1_100 * 1024 * 1024)
    print(f"\nzstd record of {k.max_message_bytes // 2} bytes: {small}\nzstd record of 1.1 GiB: {bomb}")
    assert small.startswith("ACCEPTED"), small
    assert bomb.startswith("REFUSED") and "InvalidRecord" in bomb, bomb
    assert KafkaBroker(s).pid() is not None, "the broker died decompressing the bomb"
    assert all_tasks_running(s, risk_run.job_id) and restarts(s, risk_run.job_id) == before


def test_the_object_store_refuses_a_client_without_credentials_or_with_a_wrong_key(stack_settings: Settings) -> None:
    import urllib.error
    import urllib.request

    from botocore.exceptions import ClientError

    from loanrisk.objectstore import s3_client
    s3 = stack_settings.s3
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{s3.url}/{s3.bucket}?list-type=2", timeout=10)
    wrong = type(s3).model_validate({**dict(s3), "secret_access_key": "not-the-key", "secret_access_key_file": None})
    with pytest.raises(ClientError) as signed_wrong:
        s3_client(wrong, attempts=1).list_objects_v2(Bucket=s3.bucket, MaxKeys=1)
    assert s3_client(s3).list_objects_v2(Bucket=s3.bucket, MaxKeys=1)["ResponseMetadata"]["HTTPStatusCode"] == 200
    print(f"\nobject store {s3.url}: anonymous {anonymous.value.code}, wrong key "
          f"{signed_wrong.value.response['Error']['Code']}, the configured key lists the bucket")
    assert anonymous.value.code == 403


def _job_registry_key(s: Settings) -> S3Settings:
    """The S3 endpoint and key the running risk job's scorer reads the registry with, from the parameter file the job
    was submitted with (what its UDF receives as job parameters), as S3 settings every client takes."""
    from jobs.params import params_path
    conf = json.loads(params_path(s, RISK_JOB_NAME).read_text())["flink_conf"]
    udf = json.loads(conf["pipeline.global-job-parameters"])
    return S3Settings(endpoint=udf["s3.endpoint"], region=udf["s3.region"], bucket=s.s3.bucket,
                      access_key_id=udf["s3.access_key_id"], secret_access_key=udf["s3.secret_access_key"])


def _refused(call) -> int | None:
    """The HTTP status a refused S3 request got, or None when it was carried out."""
    from botocore.exceptions import ClientError
    try:
        call()
    except ClientError as exc:
        return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])
    return None


def test_the_jobs_registry_key_reads_the_champion_but_cannot_write_or_delete(risk_run: RiskRun) -> None:
    from contracts.registry_layout import champion_path
    from loanrisk.objectstore import s3_client
    s = risk_run.settings
    job_key = _job_registry_key(s)
    assert (job_key.url, job_key.access_key_id) != (s.s3.url, s.s3.access_key_id), "the job reads as the trainer"
    assert job_key.secret() != s.s3.secret(), "the job holds the read-write key"
    bucket, key = s.s3.bucket, champion_path(s.model.registry(s.s3)).removeprefix(f"s3://{s.s3.bucket}/")
    reader, writer = s3_client(job_key, attempts=1), s3_client(s.s3, attempts=1)
    champion = writer.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert reader.get_object(Bucket=bucket, Key=key)["Body"].read() == champion
    stray = key.rsplit("/", 1)[0] + "/intruder.json"
    refused = {"PUT over champion.json": _refused(lambda: reader.put_object(Bucket=bucket, Key=key, Body=b"{}")),
               "PUT of a new object": _refused(lambda: reader.put_object(Bucket=bucket, Key=stray, Body=b"{}")),
               "DELETE of champion.json": _refused(lambda: reader.delete_object(Bucket=bucket, Key=key))}
    # Its key is the read-only endpoint's own: the read-write endpoint does not know it.
    elsewhere = s3_client(type(job_key).model_validate({**dict(job_key), "endpoint": s.s3.url}), attempts=1)
    unknown = _refused(lambda: elsewhere.get_object(Bucket=bucket, Key=key))
    print(f"\njob's registry key {job_key.access_key_id} on {job_key.url}: reads champion.json ({len(champion)} bytes); "
          f"refused: {refused}; on the read-write endpoint {s.s3.url}: {unknown}")
    assert refused == {name: 501 for name in refused}, refused
    assert writer.get_object(Bucket=bucket, Key=key)["Body"].read() == champion
    assert _refused(lambda: writer.head_object(Bucket=bucket, Key=stray)) == 404
    assert unknown == 403


def _kafka_refusal(conf: dict) -> str:
    """Why the broker would not give a client with ``conf`` the topic list ('' when it did)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    try:
        AdminClient({**conf, "socket.timeout.ms": 3000, "log_level": 0}).list_topics(timeout=5)
    except KafkaException as exc:
        return str(exc.args[0])
    return ""


def _as_user(k: KafkaSettings, username: str, password: str | None = None) -> KafkaSettings:
    """The platform's Kafka settings logged in as ``username`` (with its generated password unless one is given)."""
    return k.model_validate({**dict(k), "sasl_username": username,
                             "sasl_password": password or k.sasl_secret(username), "sasl_password_file": None})


def test_every_platform_client_logs_in_on_the_kafka_listener_which_refuses_strangers(risk_run: RiskRun) -> None:
    """The session's broker serves the platform SASL/SCRAM only: a client without credentials or with wrong ones
    gets nothing on the platform's bootstrap. The risk job (which has run by now) was given that bootstrap and the
    SCRAM login, the lag exporter reads the job's offsets through it, and the broker's only PLAINTEXT listeners are
    its own admin and controller ones."""
    import urllib.request

    from stack.services.kafka import KafkaBroker

    s = risk_run.settings
    k = s.kafka
    assert k.local_broker and k.security_protocol == "SASL_PLAINTEXT", "the session stack must run Kafka over SASL"
    no_credentials = _kafka_refusal({"bootstrap.servers": k.bootstrap})
    wrong_credentials = _kafka_refusal(_as_user(k, "mallory", "guess").client_config())
    assert no_credentials and wrong_credentials, "a client without (valid) credentials got the topic list"
    assert _kafka_refusal(k.client_config()) == ""

    listeners = dict(line.split("=", 1) for line in (KafkaBroker(s).home / "server.properties").read_text().splitlines()
                     if "=" in line)
    protocols = dict(pair.split(":") for pair in listeners["listener.security.protocol.map"].split(","))
    ports = {url.split("://")[0]: int(url.rsplit(":", 1)[1]) for url in listeners["listeners"].split(",")}
    assert {name: protocols[name] for name in ports} == {"PLATFORM": "SASL_PLAINTEXT", "ADMIN": "PLAINTEXT",
                                                         "CONTROLLER": "PLAINTEXT"}, protocols
    assert ports["PLATFORM"] == k.port and k.bootstrap == f"127.0.0.1:{k.port}" != k.admin_bootstrap

    from jobs.params import params_path
    job_sql = json.loads(params_path(s, RISK_JOB_NAME).read_text())["sql"]
    assert job_sql["kafka_bootstrap"] == k.bootstrap
    assert "'properties.security.protocol' = 'SASL_PLAINTEXT'" in job_sql["kafka_security"]
    assert "'properties.sasl.mechanism' = 'SCRAM-SHA-512'" in job_sql["kafka_security"]
    assert f'ScramLoginModule required username="{k.sasl_user}"' in job_sql["kafka_security"]

    exporter = urllib.request.urlopen(f"http://127.0.0.1:{s.prometheus.exporter_port}/metrics", timeout=10).read()
    assert b"loanrisk_kafka_up 1.0" in exporter, "the lag exporter cannot read Kafka"
    print(f"\nKafka {k.bootstrap}: SASL_PLAINTEXT (SCRAM-SHA-512); no credentials refused ({no_credentials[:60]}), "
          f"wrong ones refused ({wrong_credentials[:60]}); the risk job and the lag exporter log in as "
          f"{k.sasl_user}; PLAINTEXT only on the stack's admin listener {k.admin_bootstrap} and the controller's")


def test_the_kafka_acls_let_the_analyst_only_read_and_the_platform_user_not_administer(risk_run: RiskRun) -> None:
    """Least privilege on the session's broker: the analyst reads what the job wrote and cannot write; the platform
    user, which every client of the platform logs in as, reads and writes its topics but cannot create one."""
    import secrets

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from ingestion.consumer import EventConsumer

    s = risk_run.settings
    k = s.kafka
    analyst = _as_user(k, k.analyst_username)
    with EventConsumer([k.topics.applications], group_id=f"{k.analyst_username}-check-{secrets.token_hex(3)}",
                       kafka=analyst, read_committed=True) as consumer:
        read = consumer.read_to_end(timeout_s=60)
    assert read, f"the analyst read nothing from {k.topics.applications}"

    denied: list[str] = []
    writer = Producer({**analyst.client_config(), "log_level": 0})
    writer.produce(k.topics.applications, b"analyst-was-here", on_delivery=lambda err, _msg: denied.append(str(err)))
    writer.flush(30)
    assert denied and "TOPIC_AUTHORIZATION_FAILED" in denied[0], denied

    stray = f"made-by-a-client-{secrets.token_hex(4)}"
    platform_admin = AdminClient({**k.client_config(), "log_level": 0})
    with pytest.raises(Exception, match="AUTHORIZATION_FAILED"):
        platform_admin.create_topics([NewTopic(stray, 1, 1)])[stray].result(timeout=30)
    print(f"\nanalyst {k.analyst_username}: read {len(read)} applications, write refused ({denied[0][:40]}); "
          f"platform user {k.sasl_user} may not create topics")


def _listening_sockets() -> dict[str, tuple[str, int]]:
    """Every TCP socket in LISTEN state on this machine: inode -> (address, port), read from /proc/net."""
    import ipaddress
    out: dict[str, tuple[str, int]] = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            hex_address, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_address)
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
            out[fields[9]] = (str(ipaddress.ip_address(packed)), int(hex_port, 16))
    return out


def _socket_inodes(pid: int) -> set[str]:
    import re
    inodes: set[str] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", str(fd.readlink()))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    return inodes


def _loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback address (a Java socket bound to 127.0.0.1 shows as one)."""
    import ipaddress
    ip = ipaddress.ip_address(address)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _is_taskmanager(pid: int) -> bool:
    try:
        return b"TaskManagerRunner" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_every_listener_of_the_stack_is_on_loopback_but_flinks_own_known_ones(risk_run: RiskRun) -> None:
    """Kafka, PostgreSQL, the object store, Flink's REST API and RPC, Prometheus, the Snowflake endpoint and the
    lag exporter listen on 127.0.0.1 only. Two listeners Flink opens on every interface with no option to bind
    them are known and named (docs/SECURITY.md): the Prometheus reporter's port, and the TaskManager's Beam
    servers for the Python UDF workers (ephemeral ports); any other non-loopback listener fails this test."""
    from stack.services import all_services
    from tests.stack.reliability_helpers import descendants

    s = risk_run.settings
    first, _, last = s.flink.prometheus_ports.partition("-")
    lo, hi = int(first), int(last or first)
    sockets = _listening_sockets()
    seen: dict[str, list[tuple[str, int]]] = {}
    exposed: list[str] = []
    for svc in all_services(s):
        pid = svc.pid()
        if pid is None:
            continue
        for p in [pid, *descendants(pid)]:
            for inode in _socket_inodes(p) & set(sockets):
                address, port = sockets[inode]
                seen.setdefault(svc.name, []).append((address, port))
                if _loopback(address):
                    continue
                known = svc.name == "flink" and (lo <= port <= hi or _is_taskmanager(p))
                if not known:
                    exposed.append(f"{svc.name} (pid {p}) listens on {address}:{port}")
    print("\nlisteners per service:", {name: len(ports) for name, ports in sorted(seen.items())})
    print("on every interface (Flink's, known):", sorted({f"{a}:{p}" for name, ports in seen.items() for a, p in ports
                                                          if not _loopback(a)}))
    assert {"kafka", "postgres", "s3"} <= set(seen), f"the scan found no listener of a core service: {sorted(seen)}"
    assert not exposed, exposed
