"""The scoring API as a service of the local stack: started as its own process, healthy, stopped by its PID."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from loanrisk.settings import Settings, override
from stack.process import free_port
from stack.services import all_services
from stack.services.scoring_api import ScoringApi


def test_the_stack_starts_the_api_only_when_asked() -> None:
    assert "api" not in {svc.name for svc in all_services(Settings())}
    assert "api" in {svc.name for svc in all_services(Settings(), with_api=True)}
    assert "api" in {svc.name for svc in all_services(override(Settings(), api={"enabled": True}))}


def test_the_api_service_starts_says_it_cannot_score_without_its_stores_and_stops_by_pid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    # The service process reads the settings as every stack process does, from the environment: nothing
    # listens on the serving database's port and the registry folder is empty, so it is up but not ready.
    for name, value in {"STACK__STATE_DIR": tmp_path, "API__PORT": port, "POSTGRES__PORT": free_port(),
                        "MODEL__REGISTRY_URI": tmp_path / "registry"}.items():
        monkeypatch.setenv(f"LOANRISK_{name}", str(value))
    svc = ScoringApi(Settings())
    try:
        assert svc.start(timeout_s=60)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["reasons"], ready.text
    finally:
        assert svc.stop()
    assert svc.pid() is None
