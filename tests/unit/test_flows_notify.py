"""A failed flow run notifies: one log line always, and a JSON POST to the configured webhook."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from loanrisk.settings import get_settings
from prefect_flows.notify import notify, notify_failure


@pytest.fixture()
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("LOANRISK_PREFECT__FAILURE_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hook")
    get_settings.cache_clear()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
        get_settings.cache_clear()


def test_failure_hook_logs_and_posts_to_the_webhook(webhook: list[dict], caplog: pytest.LogCaptureFixture) -> None:
    class Flow:
        name = "data_quality"

    class Run:
        name, id = "brave-otter", "1234"

    class State:
        name, message = "Failed", "1 of 9 data-quality checks failed: scores.range.probability (...)"

    with caplog.at_level(logging.ERROR, logger="loanrisk.flows"):
        notify_failure(Flow(), Run(), State())
    assert len(webhook) == 1
    assert webhook[0]["flow"] == "data_quality" and webhook[0]["state"] == "Failed"
    assert "scores.range.probability" in webhook[0]["message"]
    assert any("data_quality" in r.message and "scores.range.probability" in r.message for r in caplog.records)


def test_without_a_webhook_only_the_log_line_is_written(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("LOANRISK_PREFECT__FAILURE_WEBHOOK", raising=False)
    get_settings.cache_clear()
    with caplog.at_level(logging.ERROR, logger="loanrisk.flows"):
        assert notify("retrain", "r", "1", "Failed", "boom") is False
    assert any("retrain" in r.message and "boom" in r.message for r in caplog.records)
    get_settings.cache_clear()


def test_an_unreachable_webhook_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LOANRISK_PREFECT__FAILURE_WEBHOOK", "http://127.0.0.1:9/nothing-listens")
    monkeypatch.setenv("LOANRISK_PREFECT__WEBHOOK_TIMEOUT_S", "1")
    get_settings.cache_clear()
    with caplog.at_level(logging.ERROR, logger="loanrisk.flows"):
        assert notify("retrain", "r", "1", "Failed", "boom") is False
    assert any("unreachable" in r.message for r in caplog.records)
    get_settings.cache_clear()
