"""Security on the real stack: password auth on, secrets only from files, no secret in any log, least privilege.

The session stack (tests/conftest.py) runs with PostgreSQL scram-sha-256 and distinctive secrets
read from files: the PostgreSQL writer and reader passwords, the S3 secret key and the PII hash key.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from loanrisk.settings import Settings
from tests.stack.conftest import RiskRun

pytestmark = pytest.mark.stack


def _secrets(s: Settings) -> dict[str, str]:
    """The configured secret values, by name (each read from its file)."""
    values = {"postgres writer password": s.postgres.secret(), "postgres reader password": s.postgres.reader_secret(),
              "s3 secret key": s.s3.secret(), "pii hash key": s.privacy.key()}
    return {k: v for k, v in values.items() if v}


def _files_containing(root: Path, needles: dict[str, str]) -> dict[str, list[str]]:
    """Which files under ``root`` contain which needle (read in chunks: some logs are large)."""
    hits: dict[str, list[str]] = {}
    encoded = {name: value.encode() for name, value in needles.items()}
    longest = max(len(v) for v in encoded.values())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        tail = b""
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                window = tail + chunk
                for name, value in encoded.items():
                    if value in window and name not in hits.get(str(path), []):
                        hits.setdefault(str(path), []).append(name)
                tail = window[-longest:]
    return hits


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


def test_no_log_the_stack_writes_contains_a_secret(risk_run: RiskRun) -> None:
    """Runs after the risk job: JobManager, TaskManager (UDF workers), submit, catalog and service logs."""
    s = risk_run.settings
    secrets = _secrets(s)
    assert len(secrets) >= 3, "the session should configure distinctive secrets (tests/conftest.py)"
    logs = s.state_dir / "logs"
    files = [p for p in logs.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    hits = _files_containing(logs, secrets)
    print(f"\nsearched {len(files)} log files ({size / 1e6:.1f} MB) for {len(secrets)} secrets: {sorted(secrets)}")
    assert not hits, hits
    # The same values must not be readable through Flink's REST API (what the web UI shows).
    from stack.flink_client import rest
    exposed = json.dumps([rest(s, f"/jobs/{risk_run.job_id}/config"), rest(s, "/jobmanager/config")])
    leaked = sorted(name for name, value in secrets.items() if value in exposed)
    print(f"Flink REST job and cluster configuration: {'leaks ' + str(leaked) if leaked else 'no secret'}")
    assert not leaked, leaked


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
    port = free_port_block(3, random.Random(os.getpid() + 7))
    settings = Settings(stack={"state_dir": tmp_path / "tls-stack", "install_dir": stack_settings.install_dir},
                        kafka={"port": port, "controller_port": port + 1, "tls_port": port + 2,
                               "tls_keystore_file": keystore})
    broker = KafkaBroker(settings)
    broker.start(timeout_s=180)
    try:
        tls = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port + 2}", security_protocol="SSL", ssl_cafile=ca)
        topics = ["tls-in", "tls-out"]
        ensure_topics(settings.kafka.bootstrap, topics, 1, settings.kafka.max_message_bytes)
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
        print(f"\nKafka TLS listener 127.0.0.1:{port + 2} (test CA): {len(sent)} events produced over TLS, copied "
              f"by a Flink job over TLS in {time.monotonic() - started:.0f}s, consumed over TLS; PLAINTEXT refused")
    finally:
        broker.stop()
