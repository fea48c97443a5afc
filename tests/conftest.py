"""Shared fixtures: one real local stack per test session, on free ports, in its own state folder."""

from __future__ import annotations

import os
import random
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from loanrisk.settings import REPO_ROOT, Settings

INSTALL_DIR = Path(os.environ.get("LOANRISK_STACK__INSTALL_DIR", REPO_ROOT / ".loanrisk")).resolve()


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(n: int, rng: random.Random) -> int:
    """The first port of ``n`` consecutive ports that are all free now."""
    for _ in range(200):
        base = rng.randrange(20000, 60000 - n)
        if all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no block of free ports found")


def isolated_stack_env(state_dir: Path) -> dict[str, str]:
    """Environment overrides for an isolated stack: every port free, state under ``state_dir``."""
    rng = random.Random(os.getpid())
    base = free_port_block(24, rng)
    return {
        "LOANRISK_STACK__STATE_DIR": str(state_dir),
        "LOANRISK_STACK__INSTALL_DIR": str(INSTALL_DIR),
        "LOANRISK_STACK__HEALTH_TIMEOUT_S": "180",
        "LOANRISK_KAFKA__PORT": str(base),
        "LOANRISK_KAFKA__CONTROLLER_PORT": str(base + 1),
        "LOANRISK_FLINK__REST_PORT": str(base + 2),
        "LOANRISK_FLINK__JOBMANAGER_RPC_PORT": str(base + 3),
        "LOANRISK_POSTGRES__PORT": str(base + 4),
        "LOANRISK_S3__PORT": str(base + 5),
        "LOANRISK_SNOWFLAKE__PORT": str(base + 6),
        "LOANRISK_PROMETHEUS__PORT": str(base + 7),
        "LOANRISK_PREFECT__PORT": str(base + 9),
        "LOANRISK_FLINK__PROMETHEUS_PORTS": f"{base + 12}-{base + 21}",
    }


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Start the real stack (Kafka, Flink, PostgreSQL, S3, Snowflake endpoint, Prometheus) once per session."""
    from loanrisk.settings import get_settings
    from stack.manager import down, up
    from stack.services import all_services

    if not (INSTALL_DIR / "flink" / "lib").exists():
        pytest.fail("run `riskctl setup` (make setup) before the stack tests")
    if os.environ.get("LOANRISK_TEST_REUSE_STACK"):
        # Development only: use the stack the environment points at, already up; start nothing.
        get_settings.cache_clear()
        yield Settings()
        return
    state_dir = INSTALL_DIR / "test-stacks" / f"session-{os.getpid()}"
    if state_dir.exists():
        shutil.rmtree(state_dir)
    env = isolated_stack_env(state_dir)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    settings = Settings()
    try:
        up(settings, progress=lambda m: print(f"[stack] {m}"))
        yield settings
    finally:
        left = down(settings, progress=lambda m: print(f"[stack] {m}"))
        pids = [svc.pid() for svc in all_services(settings, with_prefect=True)]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
        if not left and not any(pids) and not os.environ.get("LOANRISK_TEST_KEEP_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_settings: Settings) -> str:
    """bootstrap.servers of the session's real Kafka broker."""
    return stack_settings.kafka.bootstrap
