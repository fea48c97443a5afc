"""The risk job's Flink configuration follows the settings (checkpointing mode, unaligned barriers, bundles)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loanrisk.settings import Settings
from jobs.params import flink_conf


def test_job_conf_checkpoints_exactly_once_with_aligned_barriers() -> None:
    """Iceberg's FlinkSink can lose data files on recovery from an unaligned checkpoint (docs/RELIABILITY.md)."""
    conf = flink_conf(Settings(), "loan-risk")
    assert conf["execution.checkpointing.mode"] == "EXACTLY_ONCE"
    assert conf["execution.checkpointing.interval"] == "10000 ms"
    assert conf["execution.checkpointing.unaligned.enabled"] == "false"
    assert not any("aligned-checkpoint-timeout" in key for key in conf)  # would switch to unaligned
    assert conf["pipeline.name"] == "loan-risk"


def test_job_conf_follows_environment_overrides(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOANRISK_FLINK__CHECKPOINT_INTERVAL_MS", "2500")
    monkeypatch.setenv("LOANRISK_FLINK__PYTHON_BUNDLE_TIME_MS", "40")
    conf = flink_conf(Settings(), "x")
    assert conf["execution.checkpointing.interval"] == "2500 ms"
    assert conf["python.fn-execution.bundle.time"] == 40


def test_the_lake_writers_distribution_is_the_tables_own_unless_the_setting_overrides_it(
        monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Iceberg's Flink writers read ``distribution-mode`` from the job's configuration before the table property:
    by default the job leaves it to the tables (chained writers); the setting overrides it for the job."""
    from contracts.table_sql import lake_table_properties
    from contracts.tables import LAKE_TABLES
    assert "distribution-mode" not in flink_conf(Settings(), "x")
    assert {lake_table_properties(t)["write.distribution-mode"] for t in LAKE_TABLES} == {"none"}
    monkeypatch.setenv("LOANRISK_FLINK__LAKE_DISTRIBUTION", "hash")
    assert flink_conf(Settings(), "x")["distribution-mode"] == "hash"


@pytest.mark.setup  # flink_config reads the Flink environment's default config
def test_buffer_debloat_is_on_by_default_and_can_be_turned_off(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from stack.flink_conf import flink_config
    key = "taskmanager.network.memory.buffer-debloat.enabled"
    assert flink_config(Settings())[key] is True
    monkeypatch.setenv("LOANRISK_FLINK__BUFFER_DEBLOAT", "false")
    assert flink_config(Settings())[key] is False


@pytest.mark.setup  # flink_config reads the Flink environment's default config
def test_with_s3_storage_checkpoints_and_savepoints_go_to_the_lakes_bucket_and_outlive_a_cancel(  # type: ignore[no-untyped-def]
        monkeypatch) -> None:
    from stack.flink_conf import flink_config
    monkeypatch.setenv("LOANRISK_FLINK__CHECKPOINT_STORAGE", "s3")
    conf = flink_config(Settings())
    assert conf["execution.checkpointing.dir"] == "s3://warehouse/flink/checkpoints"
    assert conf["execution.checkpointing.savepoint-dir"] == "s3://warehouse/flink/savepoints"
    assert conf["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
    assert conf["execution.checkpointing.num-retained"] >= 2


@pytest.mark.setup  # flink_config reads the Flink environment's default config
def test_the_s3_file_system_follows_the_object_store_settings(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from stack.flink_conf import flink_config
    monkeypatch.setenv("LOANRISK_FLINK__CHECKPOINT_STORAGE", "s3")
    monkeypatch.setenv("LOANRISK_S3__ENDPOINT", "http://127.0.0.1:19000")
    monkeypatch.setenv("LOANRISK_S3__BUCKET", "lake2")
    monkeypatch.setenv("LOANRISK_S3__ACCESS_KEY_ID", "ops")
    monkeypatch.setenv("LOANRISK_S3__SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("LOANRISK_S3__REGION", "eu-west-1")
    monkeypatch.setenv("LOANRISK_FLINK__CHECKPOINT_PREFIX", "/ops/flink-state/")
    conf = flink_config(Settings())
    assert conf["s3.endpoint"] == "http://127.0.0.1:19000" and conf["s3.endpoint.region"] == "eu-west-1"
    assert conf["s3.path.style.access"] is True  # s3proxy answers path-style requests only
    assert (conf["s3.access-key"], conf["s3.secret-key"]) == ("ops", "s3cr3t-value")
    # Only the configured keys: no fallback to the cloud's instance-metadata address.
    assert conf["s3.aws.credentials.provider"] == "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    assert conf["execution.checkpointing.dir"] == "s3://lake2/ops/flink-state/checkpoints"
    assert conf["execution.checkpointing.savepoint-dir"] == "s3://lake2/ops/flink-state/savepoints"


@pytest.mark.setup  # flink_config reads the Flink environment's default config
def test_local_checkpoint_storage_is_the_default_in_the_stack_state_folder_with_no_s3_file_system(  # type: ignore[no-untyped-def]
        monkeypatch, tmp_path) -> None:
    from stack.flink_conf import flink_config
    monkeypatch.setenv("LOANRISK_STACK__STATE_DIR", str(tmp_path))
    conf = flink_config(Settings())
    assert conf["execution.checkpointing.dir"] == f"file://{tmp_path}/flink/checkpoints"
    assert conf["execution.checkpointing.savepoint-dir"] == f"file://{tmp_path}/flink/savepoints"
    assert not [key for key in conf if key.startswith("s3.")]
    job = flink_conf(Settings(), "loan-risk")
    assert job["execution.checkpointing.dir"] == f"file://{tmp_path}/flink/checkpoints/loan-risk"


@pytest.mark.setup  # flink_config reads the Flink environment's default config
def test_the_risk_job_keeps_its_checkpoints_and_savepoints_in_folders_named_after_it(  # type: ignore[no-untyped-def]
        monkeypatch) -> None:
    monkeypatch.setenv("LOANRISK_FLINK__CHECKPOINT_STORAGE", "s3")
    conf = flink_conf(Settings(), "loan-risk")
    assert conf["execution.checkpointing.dir"] == "s3://warehouse/flink/checkpoints/loan-risk"
    assert conf["execution.checkpointing.savepoint-dir"] == "s3://warehouse/flink/savepoints/loan-risk"
    assert flink_conf(Settings(), "bench-floor")["execution.checkpointing.dir"].endswith("/bench-floor")


@pytest.mark.setup  # flink_config reads the Flink environment's default config
def test_the_written_config_is_flink_yaml_readable_only_by_its_owner(  # type: ignore[no-untyped-def]
        monkeypatch, tmp_path) -> None:
    """It holds the object store's secret key."""
    import stat

    import yaml

    from stack.flink_conf import write_flink_config
    monkeypatch.setenv("LOANRISK_FLINK__CHECKPOINT_STORAGE", "s3")
    monkeypatch.setenv("LOANRISK_STACK__STATE_DIR", str(tmp_path))
    settings = Settings()
    write_flink_config(settings)
    path = settings.flink_conf_dir / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conf = yaml.safe_load(path.read_text())
    assert conf["s3.secret-key"] == settings.s3.secret()
    assert conf["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"


def test_the_s3_plugin_goes_into_a_plugins_folder_of_its_own() -> None:
    from stack.jvm import load_pins
    from stack.setup import plugin_folder
    flink_version, groups = load_pins()
    plugins = next(g for g in groups if g.name == "flink_plugins")
    (coord,) = [c for c in plugins.artifacts if ":flink-s3-fs-" in c]
    _, artifact, version = coord.split(":")
    assert version.rsplit(".", 1)[0] == flink_version.rsplit(".", 1)[0]  # the pinned Flink's minor line
    assert plugin_folder(f"{artifact}-{version}.jar") == artifact.removeprefix("flink-")


def test_one_configured_alert_threshold_reaches_the_sql_the_udf_and_the_sql_client() -> None:
    """The job's parameters come from one builder: the SQL flags, the UDF explains and `riskctl sql` agree."""
    import json

    from jobs.params import risk_job_params
    from jobs.sql_client import init_statements
    from loanrisk.settings import override
    settings = override(Settings(), model={"alert_threshold": 0.3})
    params = risk_job_params(settings)
    udf = json.loads(str(params.flink_conf["pipeline.global-job-parameters"]))
    assert params.sql["alert_threshold"] == 0.3 and udf["model.alert_threshold"] == "0.3"
    (client_params,) = [s for s in init_statements(settings) if "pipeline.global-job-parameters" in s]
    assert json.loads(client_params.split(" = ", 1)[1].strip("'").replace("''", "'")) == udf


def test_the_configured_model_size_cap_reaches_the_udf_and_the_sql_client() -> None:
    """model.max_model_bytes travels as the other model settings do: one builder, the UDF's job parameters."""
    import json

    from jobs.params import risk_job_params, udf_parameters
    from jobs.sql_client import init_statements
    from loanrisk.settings import override
    assert udf_parameters(Settings())["model.max_model_bytes"] == str(64 * 1024 * 1024)
    settings = override(Settings(), model={"max_model_bytes": 123456})
    udf = json.loads(str(risk_job_params(settings).flink_conf["pipeline.global-job-parameters"]))
    assert udf["model.max_model_bytes"] == "123456"
    (client_params,) = [s for s in init_statements(settings) if "pipeline.global-job-parameters" in s]
    assert json.loads(client_params.split(" = ", 1)[1].strip("'").replace("''", "'")) == udf


def test_the_params_file_is_what_run_sql_reads_and_only_its_owner_can(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import stat

    from jobs.params import risk_job_params
    path = risk_job_params(Settings(), "x", savepoint="file:///sp/1").write(tmp_path / "params.json")
    data = json.loads(path.read_text())
    assert set(data) == {"sql", "flink_conf", "state_retention"}
    assert data["flink_conf"]["execution.state-recovery.path"] == "file:///sp/1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_pii_key_reaches_the_job_as_a_file_path_never_as_a_value(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The TaskManagers read the key from the file the job parameters name; no SQL or parameter holds it."""
    import json
    import stat

    from jobs.params import pii_key_file, risk_job_params
    from loanrisk.settings import override
    configured = override(Settings(), stack={"state_dir": tmp_path}, privacy={"pii_hash_key": "Configured-Key-1"})
    params = risk_job_params(configured)
    udf = json.loads(str(params.flink_conf["pipeline.global-job-parameters"]))
    key_file = Path(udf["pii.key_file"])
    assert key_file.read_text() == "Configured-Key-1" and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert udf["pii.key_id"] == "k1"
    assert "Configured-Key-1" not in json.dumps(params.as_dict()), "the key itself travels with the job"

    generated = override(Settings(), stack={"state_dir": tmp_path / "other"})
    first = pii_key_file(generated).read_text()
    assert len(first) >= 32 and pii_key_file(generated).read_text() == first, "a generated key must be kept"

    mounted = tmp_path / "mounted-secret"
    mounted.write_text("from-a-secret\n")
    assert pii_key_file(override(Settings(), privacy={"pii_hash_key_file": mounted})) == mounted


def test_a_missing_pii_key_file_is_one_clear_error() -> None:
    from jobs.params import pii_key_file
    from loanrisk.errors import ConfigError
    from loanrisk.settings import override
    with pytest.raises(ConfigError, match="cannot read secret file /nowhere/pii-key"):
        pii_key_file(override(Settings(), privacy={"pii_hash_key_file": "/nowhere/pii-key"}))


@pytest.mark.setup  # runs the Flink distribution's bin/flink
def test_the_client_jvm_options_written_are_those_bin_flink_starts_its_jvm_with(  # type: ignore[no-untyped-def]
        monkeypatch, tmp_path) -> None:
    """`flink run` plans each submission (and the supervisor's resume) in the JVM bin/flink starts, whose options
    come from env.java.opts.client: the key written must be the one the script reads. A java in front of the real
    one records each command line."""
    import subprocess

    from stack.flink_conf import CLIENT_JVM_OPTS, flink_env, write_flink_config
    from stack.java import java_home
    monkeypatch.setenv("LOANRISK_STACK__STATE_DIR", str(tmp_path))
    monkeypatch.delenv("FLINK_ENV_JAVA_OPTS_CLI", raising=False)
    settings = Settings()
    write_flink_config(settings)
    recorded = tmp_path / "java-command-lines"
    wrapper = tmp_path / "jdk" / "bin" / "java"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{recorded}"\nexec "{java_home()}/bin/java" "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, **flink_env(settings), "JAVA_HOME": str(wrapper.parent.parent)}
    done = subprocess.run([str(settings.flink_home / "bin" / "flink"), "--version"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (client,) = [line for line in recorded.read_text().splitlines() if "CliFrontend" in line]
    assert f" {CLIENT_JVM_OPTS} " in f" {client} "
