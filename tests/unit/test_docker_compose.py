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
