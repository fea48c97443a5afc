"""docker-compose.yml cannot run here (no Docker engine): check its tags, health checks and mounts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from loanrisk.settings import REPO_ROOT
from stack.services.base import Service

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_every_image_tag_is_pinned() -> None:
    for name, svc in COMPOSE["services"].items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: image {image!r} is not pinned"


def test_every_mounted_host_path_exists() -> None:
    named = set(COMPOSE.get("volumes", {}))
    for name, svc in COMPOSE["services"].items():
        for mount in svc.get("volumes", []):
            src = mount.split(":")[0]
            if src in named:
                continue
            assert (REPO_ROOT / src).exists(), f"{name} mounts {src}, which does not exist"
        build = svc.get("build")
        if build:
            assert (REPO_ROOT / build["context"] / build["dockerfile"]).exists()


def test_flink_image_matches_the_pinned_flink_version() -> None:
    from stack.jvm import load_pins
    version, _ = load_pins()
    dockerfile = (REPO_ROOT / "docker" / "flink.Dockerfile").read_text()
    assert f"FROM flink:{version}-" in dockerfile
    assert COMPOSE["services"]["jobmanager"]["image"].endswith(f":{version}")


def test_flink_image_builds_our_sql_functions_against_the_pinned_flink() -> None:
    from stack.jvm import load_pins
    version, _ = load_pins()
    dockerfile = (REPO_ROOT / "docker" / "flink.Dockerfile").read_text()
    assert "COPY jvm/functions" in dockerfile and f"-Dflink.version={version}" in dockerfile
    assert "loanrisk-flink-functions.jar /opt/flink/lib/" in dockerfile


def test_every_published_port_is_on_the_loopback_interface_only() -> None:
    """Kafka, PostgreSQL, the object store and Flink's REST API (job submission runs code) must not face a network."""
    for name, svc in COMPOSE["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_no_secret_has_a_default_and_the_env_file_is_never_committed() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    defaulted = [name for name in re.findall(r"\$\{([A-Z0-9_]+):-", text)
                 if re.search(r"PASSWORD|SECRET|_KEY$", name)]  # an access key *id* names a user, it is no secret
    assert not defaulted, f"secrets with a default value anyone can read here: {defaulted}"
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_compose_env_writes_a_distinct_secret_for_every_required_variable(tmp_path: Path) -> None:
    import stat

    from click.testing import CliRunner

    from riskctl.commands.stack_cmd import stack
    from stack.compose_env import required_variables
    required = required_variables((REPO_ROOT / "docker-compose.yml").read_text())
    assert {"LOANRISK_POSTGRES__PASSWORD", "LOANRISK_POSTGRES__READER_PASSWORD", "LOANRISK_S3__SECRET_ACCESS_KEY",
            "LOANRISK_S3__READER__SECRET_ACCESS_KEY", "GRAFANA_ADMIN_PASSWORD"} <= set(required)
    env = tmp_path / ".env"
    result = CliRunner().invoke(stack, ["compose-env", "--file", str(env)])
    assert result.exit_code == 0, result.output
    values = dict(line.split("=", 1) for line in env.read_text().splitlines() if not line.startswith("#"))
    assert sorted(values) == sorted(required) and len(set(values.values())) == len(values)
    assert all(len(v) >= 32 for v in values.values()) and stat.S_IMODE(env.stat().st_mode) == 0o600
    written = env.read_text()
    again = CliRunner().invoke(stack, ["compose-env", "--file", str(env)])
    assert again.exit_code != 0 and env.read_text() == written
    from loanrisk.errors import StackError
    assert isinstance(again.exception, StackError) and "pass --force" in str(again.exception)
    assert CliRunner().invoke(stack, ["compose-env", "--file", str(env), "--force"]).exit_code == 0
    assert dict(line.split("=", 1) for line in env.read_text().splitlines() if not line.startswith("#")) != values


# -- the compose stack against the local stack's own definitions ----------------------------------------------------

# Local service name -> compose service, where they differ (Flink's JobManager serves the REST port).
COMPOSE_NAME = {"flink": "jobmanager", "lag_exporter": "lag-exporter", "s3_reader": "s3-reader"}
# Ports only the service's own processes use: the KRaft controller, Kafka's admin listener (the init service's) and
# the JobManager's RPC port stay inside the compose network (the TaskManager reaches it there): none is published.
INTERNAL_PORTS = {("kafka", "controller"), ("kafka", "admin"), ("flink", "rpc")}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|CREDENTIAL|_KEY$|secret-key", re.IGNORECASE)


def local_services() -> list[Service]:
    """Every service `riskctl stack up --with-prefect --with-api` starts, from stack/services."""
    from loanrisk.settings import Settings
    from stack.services import all_services
    return all_services(Settings(), with_prefect=True, with_api=True)


def published_host_ports(service: dict) -> dict[int, int]:
    """Host port -> container port of every ``127.0.0.1:HOST:CONTAINER`` the service publishes."""
    pairs = (str(p).split(":") for p in service.get("ports", []))
    return {int(host): int(container) for _, host, container in pairs}


def flink_properties(service: dict) -> dict[str, str]:
    """FLINK_PROPERTIES as the image's entrypoint reads it: blanks removed, each line split at its first ':'."""
    lines = [re.sub(r"\s", "", line) for line in service["environment"]["FLINK_PROPERTIES"].splitlines()]
    return dict(line.split(":", 1) for line in lines if line)


def environment_of(service: dict) -> dict[str, str]:
    """The service's environment with ${NAME:-default} resolved to the default and ${NAME:?...} to a stand-in."""
    def resolve(value: object) -> str:
        text = re.sub(r"\$\{([A-Z0-9_]+):-([^}]*)\}", r"\2", str(value))
        return re.sub(r"\$\{([A-Z0-9_]+):\?[^}]*\}", lambda m: f"set-from-env-{m.group(1).lower()}", text)
    return {name: resolve(value) for name, value in service.get("environment", {}).items()}


def init_dependencies() -> set[str]:
    return set(COMPOSE["services"]["init"]["depends_on"])


def test_every_local_service_runs_in_compose_on_the_same_ports() -> None:
    for svc in local_services():
        name = COMPOSE_NAME.get(svc.name, svc.name)
        assert name in COMPOSE["services"], f"the local stack's {svc.name} has no compose service"
        published = published_host_ports(COMPOSE["services"][name])
        for purpose, port in svc.ports.items():
            if (svc.name, purpose) in INTERNAL_PORTS:
                assert port not in published, f"{name} publishes its internal {purpose} port {port}"
            else:
                assert port in published, f"{name} does not publish its {purpose} port {port} on 127.0.0.1"


def test_every_long_running_service_has_a_health_check_and_the_init_step_runs_once() -> None:
    for name, svc in COMPOSE["services"].items():
        if name == "init":
            assert svc["restart"] == "no" and "healthcheck" not in svc
        else:
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_every_other_service_starts_after_the_init_step_succeeded() -> None:
    for name, svc in COMPOSE["services"].items():
        if name == "init" or name in init_dependencies():
            continue
        condition = svc.get("depends_on", {}).get("init", {}).get("condition")
        assert condition == "service_completed_successfully", f"{name} does not wait for init"
    for name in init_dependencies():
        assert COMPOSE["services"]["init"]["depends_on"][name]["condition"] == "service_healthy"


def test_no_secret_value_is_written_in_the_file() -> None:
    """Every secret-named variable and Flink's S3 secret key come from .env (``${NAME:?...}``), never a literal."""
    for name, svc in COMPOSE["services"].items():
        for var, value in svc.get("environment", {}).items():
            if SECRET_NAME.search(var):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), f"{name}: {var} is not from .env"
    secret_key = flink_properties(COMPOSE["services"]["jobmanager"])["s3.secret-key"]
    assert re.fullmatch(r"\$\{LOANRISK_S3__SECRET_ACCESS_KEY:\?[^}]*\}", secret_key)


def test_init_creates_every_topic_the_bucket_and_the_serving_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """`riskctl compose init`, run with the init container's environment, against recording stand-ins."""
    from click.testing import CliRunner

    import loanrisk.serving
    import stack.services.kafka
    import stack.services.s3
    from loanrisk.settings import Settings, get_settings
    from riskctl.commands.compose import compose
    expected = Settings()
    init = COMPOSE["services"]["init"]
    assert init["command"] == ["riskctl", "compose", "init"]
    for var, value in environment_of(init).items():
        monkeypatch.setenv(var, value)
    done: dict[str, object] = {}
    monkeypatch.setattr(stack.services.kafka, "ensure_topics", lambda *args: done.setdefault("topics", args))
    monkeypatch.setattr(stack.services.kafka, "grant_sasl_access", lambda k: done.setdefault("users", k))
    monkeypatch.setattr(stack.services.s3.S3Endpoint, "after_start",
                        lambda self: done.setdefault("bucket", (self.settings.s3.url, self.settings.s3.bucket)))
    monkeypatch.setattr(loanrisk.serving, "ensure_serving_tables",
                        lambda settings: done.setdefault("serving", settings.postgres.host))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(compose, ["init"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    topics = expected.kafka.topics
    kafka, *rest = done["topics"]  # type: ignore[misc]
    assert kafka.admin_bootstrap == f"kafka:{expected.kafka.admin_port}"
    assert rest == [topics.all(), topics.partitions, topics.topic_config(expected.kafka.max_message_bytes)]
    assert done["users"] is kafka and kafka.sasl and kafka.sasl_password is not None
    assert done["bucket"] == (f"http://s3:{expected.s3.port}", expected.s3.bucket)
    assert done["serving"] == "postgres"


def test_kafka_listens_for_containers_and_for_the_host() -> None:
    from loanrisk.settings import Settings
    k = Settings().kafka
    env = environment_of(COMPOSE["services"]["kafka"])
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert set(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].replace(":", ",").split(",")[::2]) == set(listeners)
    assert advertised["INTERNAL"] == "kafka:9092" and listeners["INTERNAL"] == ":9092"
    platform = environment_of(COMPOSE["services"]["init"])
    assert (platform["LOANRISK_KAFKA__HOST"], platform["LOANRISK_KAFKA__PORT"]) == ("kafka", "9092")
    assert platform["LOANRISK_KAFKA__ADMIN_PORT"] == str(k.admin_port) and listeners["ADMIN"] == f":{k.admin_port}"
    assert advertised["ADMIN"] == f"kafka:{k.admin_port}"
    # The host's riskctl, with default settings, bootstraps from 127.0.0.1:kafka.port and is sent back there.
    assert advertised["HOST"] == f"127.0.0.1:{k.port}"
    assert published_host_ports(COMPOSE["services"]["kafka"])[k.port] == int(listeners["HOST"].lstrip(":"))
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert int(env["KAFKA_NUM_PARTITIONS"]) == k.topics.partitions
    assert int(env["KAFKA_MESSAGE_MAX_BYTES"]) == k.max_message_bytes + 65536


def test_kafka_clients_log_in_with_scram_under_acls_as_on_the_local_stack() -> None:
    """The clients' listeners take SCRAM-SHA-512 (the platform containers' default settings, with the passwords of
    .env), the authorizer refuses what no ACL grants, and only the unpublished admin and controller listeners
    are PLAINTEXT, as the local broker's (stack/services/kafka.py)."""
    from loanrisk.settings import Settings
    k = Settings().kafka
    env = environment_of(COMPOSE["services"]["kafka"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols == {"INTERNAL": k.security_protocol, "HOST": k.security_protocol, "ADMIN": "PLAINTEXT",
                         "CONTROLLER": "PLAINTEXT"}
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == k.sasl_mechanism
    for name in ("INTERNAL", "HOST"):
        jaas = env[f"KAFKA_LISTENER_NAME_{name}_{k.sasl_mechanism.replace('-', '___')}_SASL_JAAS_CONFIG"]
        assert jaas == "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    assert (env["KAFKA_AUTHORIZER_CLASS_NAME"], env["KAFKA_SUPER_USERS"], env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"]) \
        == ("org.apache.kafka.metadata.authorizer.StandardAuthorizer", "User:ANONYMOUS", "false")
    assert f"--bootstrap-server localhost:{k.admin_port}" in " ".join(COMPOSE["services"]["kafka"]["healthcheck"]["test"])
    platform = environment_of(COMPOSE["services"]["init"])
    for var in ("LOANRISK_KAFKA__SASL_PASSWORD", "LOANRISK_KAFKA__ANALYST_PASSWORD"):
        assert platform[var] == f"set-from-env-{var.lower()}", f"{var} must come from .env"


def test_the_object_store_is_the_pinned_s3proxy_on_the_settings_port_and_bucket() -> None:
    import tomllib

    from loanrisk.settings import Settings
    s3 = Settings().s3
    pins = tomllib.loads((REPO_ROOT / "jvm" / "artifacts.toml").read_text())
    version = pins["groups"]["s3proxy"]["artifacts"][0].rpartition(":")[2]
    svc = COMPOSE["services"]["s3"]
    assert svc["image"] == f"andrewgaul/s3proxy:{version}"
    env = environment_of(svc)
    assert env["S3PROXY_ENDPOINT"] == f"http://0.0.0.0:{s3.port}" and env["JCLOUDS_PROVIDER"] == "filesystem"
    assert environment_of(COMPOSE["services"]["init"])["LOANRISK_S3__BUCKET"] == s3.bucket
    assert "minio" not in (REPO_ROOT / "docker-compose.yml").read_text().lower()


def test_the_registry_readers_endpoint_serves_the_same_volume_read_only_with_its_own_key() -> None:
    from loanrisk.settings import Settings
    s3 = Settings().s3
    rw, ro = environment_of(COMPOSE["services"]["s3"]), environment_of(COMPOSE["services"]["s3-reader"])
    assert COMPOSE["services"]["s3-reader"]["image"] == COMPOSE["services"]["s3"]["image"]
    assert ro["S3PROXY_READ_ONLY_BLOBSTORE"] == "true" and "S3PROXY_READ_ONLY_BLOBSTORE" not in rw
    assert ro["S3PROXY_ENDPOINT"] == f"http://0.0.0.0:{s3.reader.port}"
    assert ro["JCLOUDS_FILESYSTEM_BASEDIR"] == rw["JCLOUDS_FILESYSTEM_BASEDIR"]
    assert COMPOSE["services"]["s3-reader"]["volumes"] == [f"{COMPOSE['services']['s3']['volumes'][0]}:ro"]
    assert (ro["S3PROXY_IDENTITY"], ro["S3PROXY_CREDENTIAL"]) != (rw["S3PROXY_IDENTITY"], rw["S3PROXY_CREDENTIAL"])
    assert ro["S3PROXY_IDENTITY"] == s3.reader.access_key_id
    # The platform's readers (the scoring API) are pointed at it, with the key it accepts.
    platform = environment_of(COMPOSE["services"]["api"])
    assert platform["LOANRISK_S3__READER__HOST"] == "s3-reader"
    assert platform["LOANRISK_S3__READER__ACCESS_KEY_ID"] == ro["S3PROXY_IDENTITY"]
    assert platform["LOANRISK_S3__READER__SECRET_ACCESS_KEY"] == ro["S3PROXY_CREDENTIAL"]


def test_flink_checkpoints_on_the_object_store_with_path_style_access() -> None:
    from loanrisk.settings import Settings
    from stack.flink_conf import PROMETHEUS_INCLUDES
    settings = Settings()
    for name in ("jobmanager", "taskmanager"):
        svc = COMPOSE["services"][name]
        assert svc["build"]["dockerfile"] == "docker/flink.Dockerfile"
        props = {key: environment_of({"environment": {key: value}})[key]
                 for key, value in flink_properties(svc).items()}
        root = f"s3://{settings.s3.bucket}/{settings.flink.checkpoint_prefix}"
        assert props["execution.checkpointing.dir"] == f"{root}/checkpoints"
        assert props["execution.checkpointing.savepoint-dir"] == f"{root}/savepoints"
        assert props["s3.endpoint"] == f"http://s3:{settings.s3.port}" and props["s3.path.style.access"] == "true"
        assert props["s3.access-key"] == settings.s3.access_key_id
        assert props["metrics.reporter.prom.filter.includes"] == ";".join(PROMETHEUS_INCLUDES)


def test_flink_properties_survive_the_images_entrypoint() -> None:
    """It re-nests dotted keys: a comment line becomes a key, and a key that prefixes another breaks the config."""
    raw = COMPOSE["services"]["jobmanager"]["environment"]["FLINK_PROPERTIES"]
    assert not [line for line in raw.splitlines() if line.lstrip().startswith("#")]
    keys = list(flink_properties(COMPOSE["services"]["jobmanager"]))
    assert len(keys) == len(set(keys))
    clashes = [(a, b) for a in keys for b in keys if b.startswith(a + ".")]
    assert not clashes, f"keys that prefix others: {clashes}"


def test_platform_image_installs_the_lock_and_the_project_and_runs_riskctl() -> None:
    dockerfile = (REPO_ROOT / "docker" / "platform.Dockerfile").read_text()
    assert "pip install --no-cache-dir -r /tmp/platform.lock" in dockerfile
    assert "COPY requirements/platform.lock" in dockerfile and re.search(r"pip install .*\s\.\s", dockerfile)
    for name in ("init", "lag-exporter", "api", "snowflake"):
        svc = COMPOSE["services"][name]
        assert svc["build"]["dockerfile"] == "docker/platform.Dockerfile"
    for name in ("init", "lag-exporter", "api"):
        assert COMPOSE["services"][name]["command"][0] == "riskctl"


def test_prometheus_scrapes_like_the_local_stack_loads_the_rules_and_alerts_alertmanager() -> None:
    from loanrisk.settings import Settings
    settings = Settings()
    config = yaml.safe_load((REPO_ROOT / "docker" / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == f"{settings.prometheus.scrape_interval_s}s"
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets["loanrisk"] == [f"lag-exporter:{settings.prometheus.exporter_port}"]
    mounts = dict(m.split(":")[:2] for m in COMPOSE["services"]["prometheus"]["volumes"])
    rules_dir = mounts["./prometheus/rules"]
    assert config["rule_files"] == [f"{rules_dir}/*.yml"] and (REPO_ROOT / "prometheus/rules/loan-risk.yml").exists()
    assert mounts["./docker/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    alertmanagers = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    host, port = alertmanagers[0].split(":")
    assert host in COMPOSE["services"] and int(port) in published_host_ports(COMPOSE["services"][host]).values()


def test_alertmanager_routes_every_alert_to_the_webhook_from_the_env_file() -> None:
    svc = COMPOSE["services"]["alertmanager"]
    repo, _, tag = svc["image"].rpartition(":")
    assert repo == "prom/alertmanager" and re.fullmatch(r"v\d+\.\d+\.\d+", tag)
    mounts = dict(m.split(":")[:2] for m in svc["volumes"])
    config = yaml.safe_load((REPO_ROOT / "docker" / "alertmanager.yml").read_text())
    assert f"--config.file={mounts['./docker/alertmanager.yml']}" in svc["command"]
    receivers = {r["name"]: r for r in config["receivers"]}
    webhook = receivers[config["route"]["receiver"]]["webhook_configs"][0]
    assert "url" not in webhook
    [url_config] = [c for c in svc["configs"] if c["target"] == webhook["url_file"]]
    assert re.fullmatch(r"\$\{ALERTMANAGER_WEBHOOK_URL:-https?://[^}]+\}",
                        COMPOSE["configs"][url_config["source"]]["content"])


def test_alertmanager_routes_as_the_local_stack_does_with_the_default_settings() -> None:
    from loanrisk.settings import Settings
    from stack.services.alertmanager import alertmanager_config
    config = yaml.safe_load((REPO_ROOT / "docker" / "alertmanager.yml").read_text())
    url_file = {"url_file": config["receivers"][0]["webhook_configs"][0]["url_file"]}
    assert config == alertmanager_config(Settings().alerting, url_file)


def test_the_prefect_server_vacuums_old_flow_runs_as_the_local_stack_does_with_the_default_settings() -> None:
    from loanrisk.settings import Settings
    from stack.services.prefect import database_vacuum_env
    env = {k: str(v) for k, v in COMPOSE["services"]["prefect"]["environment"].items()}
    assert env.items() >= database_vacuum_env(Settings().prefect).items()


def test_compose_env_lists_the_optional_variables_with_their_defaults(tmp_path: Path) -> None:
    from stack.compose_env import optional_variables, write_env_file
    env = tmp_path / ".env"
    write_env_file(env)
    optional = optional_variables((REPO_ROOT / "docker-compose.yml").read_text())
    assert {"ALERTMANAGER_WEBHOOK_URL", "LOANRISK_S3__BUCKET", "LOANRISK_S3__ACCESS_KEY_ID"} <= set(optional)
    for name, default in optional.items():
        assert f"# {name}={default}\n" in env.read_text()
