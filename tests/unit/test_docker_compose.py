"""docker-compose.yml cannot run here (no Docker engine): check its tags, health checks and mounts."""

from __future__ import annotations

import yaml

from loanrisk.settings import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_every_image_tag_is_pinned() -> None:
    for name, svc in COMPOSE["services"].items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: image {image!r} is not pinned"


def test_every_service_has_a_health_check() -> None:
    for name, svc in COMPOSE["services"].items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"


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
    import re
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    defaulted = [name for name in re.findall(r"\$\{([A-Z0-9_]+):-", text)
                 if re.search(r"PASSWORD|SECRET|_KEY$", name)]  # an access key *id* names a user, it is no secret
    assert not defaulted, f"secrets with a default value anyone can read here: {defaulted}"
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_compose_env_writes_a_distinct_secret_for_every_required_variable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import stat

    from click.testing import CliRunner

    from riskctl.commands.stack_cmd import stack
    from stack.compose_env import required_variables
    required = required_variables((REPO_ROOT / "docker-compose.yml").read_text())
    assert {"LOANRISK_POSTGRES__PASSWORD", "LOANRISK_POSTGRES__READER_PASSWORD", "LOANRISK_S3__SECRET_ACCESS_KEY",
            "GRAFANA_ADMIN_PASSWORD"} <= set(required)
    env = tmp_path / ".env"
    result = CliRunner().invoke(stack, ["compose-env", "--file", str(env)])
    assert result.exit_code == 0, result.output
    values = dict(line.split("=", 1) for line in env.read_text().splitlines() if not line.startswith("#"))
    assert sorted(values) == sorted(required) and len(set(values.values())) == len(values)
    assert all(len(v) >= 32 for v in values.values()) and stat.S_IMODE(env.stat().st_mode) == 0o600
    again = CliRunner().invoke(stack, ["compose-env", "--file", str(env)])
    assert again.exit_code != 0 and env.read_text().count("=") == len(values)
    from loanrisk.errors import StackError
    assert isinstance(again.exception, StackError) and "pass --force" in str(again.exception)
    assert CliRunner().invoke(stack, ["compose-env", "--file", str(env), "--force"]).exit_code == 0
    assert dict(line.split("=", 1) for line in env.read_text().splitlines() if not line.startswith("#")) != values
