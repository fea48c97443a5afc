"""Settings: defaults, environment and YAML overrides, secrets, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from loanrisk.errors import ConfigError
from loanrisk.settings import REPO_ROOT, Settings, get_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the LOANRISK_* variables it sets itself."""
    import os
    for key in list(os.environ):
        if key.startswith("LOANRISK_"):
            monkeypatch.delenv(key)


def test_defaults_are_a_loopback_stack() -> None:
    s = Settings()
    assert s.kafka.bootstrap.startswith("127.0.0.1:")
    assert s.flink.rest_url.startswith("http://127.0.0.1:")
    assert s.iceberg_catalog_properties()["s3.endpoint"].startswith("http://127.0.0.1:")


def test_environment_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOANRISK_KAFKA__PORT", "19092")
    monkeypatch.setenv("LOANRISK_KAFKA__TOPICS__PARTITIONS", "6")
    s = Settings()
    assert s.kafka.bootstrap == "127.0.0.1:19092" and s.kafka.topics.partitions == 6


def test_yaml_file_is_below_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "loanrisk.yaml"
    cfg.write_text("kafka:\n  port: 29092\nflink:\n  parallelism: 3\n")
    monkeypatch.setenv("LOANRISK_CONFIG", str(cfg))
    monkeypatch.setenv("LOANRISK_FLINK__PARALLELISM", "1")
    s = Settings()
    assert s.kafka.port == 29092 and s.flink.parallelism == 1


def test_secret_files_are_read_and_secrets_do_not_print(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "pg-password"
    secret.write_text("s3cr3t-Value-42\n")
    monkeypatch.setenv("LOANRISK_POSTGRES__PASSWORD_FILE", str(secret))
    s = Settings()
    assert s.postgres.secret() == "s3cr3t-Value-42"
    assert "s3cr3t-Value-42" not in repr(s) and "s3cr3t-Value-42" not in str(s.model_dump())


def test_invalid_value_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOANRISK_KAFKA__PORT", "not-a-port")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match=r"kafka.port \(LOANRISK_KAFKA__PORT\)"):
        get_settings()
    get_settings.cache_clear()


def test_a_variable_that_names_no_setting_is_one_clear_line_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A retired or misspelt variable would leave the default it meant to replace in force without a word."""
    monkeypatch.setenv("LOANRISK_KAFKA__SASL_PORT", "9094")  # retired: the listeners are kafka.port and admin_port
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match=r"^LOANRISK_KAFKA__SASL_PORT names no setting: kafka has no 'sasl_port' "
                                          r"\(there are host, port, "):
        get_settings()
    monkeypatch.delenv("LOANRISK_KAFKA__SASL_PORT")
    monkeypatch.setenv("LOANRISK_KAFKA__TOPICS__RETENTION_HOUR", "24")
    with pytest.raises(ConfigError, match=r"kafka.topics has no 'retention_hour'"):
        get_settings()
    monkeypatch.delenv("LOANRISK_KAFKA__TOPICS__RETENTION_HOUR")
    monkeypatch.setenv("LOANRISK_FLINKK__PARALLELISM", "1")
    with pytest.raises(ConfigError, match=r"there is no section 'flinkk' \(there are stack, kafka, flink, "):
        get_settings()
    monkeypatch.delenv("LOANRISK_FLINKK__PARALLELISM")
    # Every setting's own variable passes, an alias too, and variables that are not settings are left alone.
    for name in ("LOANRISK_KAFKA__TOPICS__RETENTION_HOURS", "LOANRISK_SNOWFLAKE__SCHEMA",
                 "LOANRISK_S3__READER__ACCESS_KEY_ID", "LOANRISK_TEST_KEEP_STATE"):
        monkeypatch.setenv(name, "24" if name.endswith("HOURS") else "x")
    assert get_settings().snowflake.schema_name == "x"
    get_settings.cache_clear()


def test_the_future_tolerance_is_tight_by_default_and_overridable(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.flink.future_tolerance_s == 300 and s.flink.future_tolerance == timedelta(minutes=5)
    assert "watermark" in (type(s.flink).model_fields["future_tolerance_s"].description or "")
    monkeypatch.setenv("LOANRISK_FLINK__FUTURE_TOLERANCE_S", "0")
    assert Settings().flink.future_tolerance == timedelta(0)


def test_a_negative_future_tolerance_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOANRISK_FLINK__FUTURE_TOLERANCE_S", "-1")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match=r"flink.future_tolerance_s \(LOANRISK_FLINK__FUTURE_TOLERANCE_S\)"):
        get_settings()
    get_settings.cache_clear()


def test_cli_with_bad_config_prints_one_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flink: [not, a, mapping\n")
    proc = subprocess.run([sys.executable, "-m", "riskctl.main", "stack", "status"], capture_output=True, text=True,
                          env={"LOANRISK_CONFIG": str(bad), "PATH": "/usr/bin:/bin"}, cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not valid YAML" in lines[0] and "Traceback" not in proc.stderr


def test_cli_with_bad_argument_prints_usage_error_not_a_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "riskctl.main", "stack", "logs"], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "Missing argument" in proc.stderr


def test_a_topic_retention_past_the_erasure_deadline_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The input topics hold raw PII and cannot delete one customer: they must forget within the deadline."""
    s = Settings()
    assert s.kafka.topics.longest_life_ms() <= s.privacy.erasure_deadline_days * 86_400_000
    monkeypatch.setenv("LOANRISK_KAFKA__TOPICS__RETENTION_HOURS", "720")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match=r"retention_hours \(720 h\) keeps a message up to 37.5 days .* "
                                          r"privacy.erasure_deadline_days \(30\).* at most 576 h"):
        get_settings()
    monkeypatch.setenv("LOANRISK_PRIVACY__ERASURE_DEADLINE_DAYS", "40")
    get_settings.cache_clear()
    assert get_settings().kafka.topics.retention_ms() == 720 * 3_600_000
    get_settings.cache_clear()


def test_the_flink_kafka_options_log_in_with_the_connectors_relocated_scram_module(tmp_path: Path) -> None:
    """Flink's SQL Kafka connector relocates the Kafka client: the JAAS line must name its login module."""
    import zipfile

    from loanrisk.settings import KafkaSettings
    k = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="svc",
                      sasl_password="p\"w", ssl_cafile=tmp_path / "ca.pem")
    props = k.java_properties()
    module = props["sasl.jaas.config"].split()[0]
    assert props["sasl.jaas.config"].endswith('required username="svc" password="p\\"w";')
    assert k.client_config()["sasl.password"] == 'p"w' and k.client_config()["sasl.username"] == "svc"
    connector = sorted((Settings().flink_home / "lib").glob("flink-sql-connector-kafka-*.jar"))
    if not connector:
        pytest.skip("no Flink Kafka connector installed (make setup)")
    with zipfile.ZipFile(connector[0]) as jar:
        assert module.replace(".", "/") + ".class" in jar.namelist(), f"{module} is not in {connector[0].name}"


def test_the_local_brokers_sasl_users_get_generated_passwords_of_their_own(tmp_path: Path) -> None:
    from loanrisk.settings import KafkaSettings
    k = KafkaSettings(generated_secrets_dir=tmp_path)
    platform, analyst = k.sasl_secret(), k.sasl_secret(k.analyst_username)
    assert platform and analyst and platform != analyst and k.sasl_secret() == platform
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"kafka-{k.analyst_username}", f"kafka-{k.sasl_user}"])
    configured = KafkaSettings(generated_secrets_dir=tmp_path, analyst_password="mine")
    assert configured.sasl_secret(k.analyst_username) == "mine" and configured.sasl_secret() == platform
    elsewhere = KafkaSettings(bootstrap_servers="b1:9093", sasl_password="theirs", generated_secrets_dir=tmp_path)
    assert elsewhere.sasl_secret(k.analyst_username) == "", "not our broker: no analyst of ours to make"
