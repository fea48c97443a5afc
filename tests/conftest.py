"""Shared fixtures: one real local stack per test session, on free ports, in its own state folder."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loanrisk.settings import REPO_ROOT, KafkaSettings, Settings
from stack import isolated

INSTALL_DIR = Path(os.environ.get("LOANRISK_STACK__INSTALL_DIR", REPO_ROOT / ".loanrisk")).resolve()

free_port_block = isolated.free_port_block


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under `pytest -n 2 --dist loadgroup` (make test) two groups, one per worker: the stack modules, in
    their order (tests/stack/conftest.py) on one session stack, and the unit tests beside them. Each group
    stays on its own worker: unit tests never run in a process whose environment points at the stack."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        item.add_marker(pytest.mark.xdist_group("stack" if "tests/stack/" in str(item.path) else "unit"))


_UNIT_NICENESS = 15


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """The unit worker yields the cores to the stack: the stack's timeline is the suite's, and its Flink, Kafka
    and Python workers leave the cores idle often enough (checkpoint waits, polls) for the unit tests."""
    if (os.environ.get("PYTEST_XDIST_WORKER") and "tests/stack/" not in str(item.path)
            and os.nice(0) < _UNIT_NICENESS):
        os.nice(_UNIT_NICENESS - os.nice(0))


def session_secrets(state_dir: Path) -> dict[str, str]:
    """Distinctive secrets in files (mode 0600) with PostgreSQL password auth on (Kafka's SASL is the default);
    test_security.py greps for them."""
    folder = state_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    env = {"LOANRISK_POSTGRES__AUTH": "scram-sha-256"}
    for name, var in (("postgres-writer", "LOANRISK_POSTGRES__PASSWORD_FILE"),
                      ("postgres-reader", "LOANRISK_POSTGRES__READER_PASSWORD_FILE"),
                      ("s3", "LOANRISK_S3__SECRET_ACCESS_KEY_FILE"), ("pii", "LOANRISK_PRIVACY__PII_HASH_KEY_FILE"),
                      ("kafka", "LOANRISK_KAFKA__SASL_PASSWORD_FILE")):
        path = folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"Sekret{name.title().replace('-', '')}{secrets.token_hex(12)}")
        env[var] = str(path)
    return env


def compressed_alerting(alertmanager_port: int) -> dict[str, str]:
    """Alerts in compressed time: every rule's pending and Alertmanager's grouping waits cut to seconds; the
    webhook on the port after Alertmanager's, where tests/stack/test_alerting.py listens."""
    return {"LOANRISK_ALERTING__RULE_FOR_MAX_S": "5", "LOANRISK_ALERTING__GROUP_WAIT_S": "1",
            "LOANRISK_ALERTING__GROUP_INTERVAL_S": "5",
            "LOANRISK_ALERTING__WEBHOOK_URL": f"http://127.0.0.1:{alertmanager_port + 1}/alerts"}


def isolated_stack_env(state_dir: Path) -> dict[str, str]:
    """Environment overrides for an isolated stack of this test process (see stack/isolated.py), own secrets."""
    env = isolated.isolated_stack_env(state_dir, INSTALL_DIR, seed=os.getpid())
    return {**env, **compressed_alerting(int(env["LOANRISK_ALERTING__PORT"])), **session_secrets(state_dir)}


@contextmanager
def isolated_stack(name: str, extra_env: dict[str, str] | None = None) -> Iterator[Settings]:
    """Start an isolated stack (.loanrisk/test-stacks/<name>, free ports, own secrets; ``extra_env`` over that),
    with this process's environment pointing at it until it is stopped by PID; its state goes when nothing
    of it is left (LOANRISK_TEST_KEEP_STATE keeps it)."""
    from loanrisk.settings import get_settings
    from stack.manager import down, up
    from stack.services import all_services

    state_dir = INSTALL_DIR / "test-stacks" / name
    if state_dir.exists():
        shutil.rmtree(state_dir)
    env = {**isolated_stack_env(state_dir), **(extra_env or {})}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    settings = Settings()

    def say(message: str) -> None:
        print(f"[{name}] {message}")

    try:
        up(settings, progress=say)
        yield settings
    finally:
        left = down(settings, progress=say)
        pids = [svc.pid() for svc in all_services(settings, with_prefect=True, with_api=True)]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
        if not left and not any(pids) and not os.environ.get("LOANRISK_TEST_KEEP_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Start the real stack (Kafka, Flink, PostgreSQL, S3, Snowflake endpoint, Prometheus) once per session."""
    from loanrisk.settings import get_settings

    if not (INSTALL_DIR / "flink" / "lib").exists():
        pytest.fail("run `riskctl setup` (make setup) before the stack tests")
    if os.environ.get("LOANRISK_TEST_REUSE_STACK"):
        # Development only: use the stack the environment points at, already up; start nothing.
        get_settings.cache_clear()
        yield Settings()
        return
    with isolated_stack(f"session-{os.getpid()}") as settings:
        yield settings


@pytest.fixture(scope="session")
def kafka(stack_settings: Settings) -> KafkaSettings:
    """How the platform's clients reach the session's real Kafka broker (where, and how they log in)."""
    return stack_settings.kafka
