"""An alert on a real condition, end to end: the risk job cancelled, Prometheus's rule firing, Alertmanager
delivering it to a webhook this test listens on. Runs last: it ends the session's job."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import httpx
import pytest

from tests.stack.conftest import RiskRun

pytestmark = pytest.mark.stack


class _Receiver(BaseHTTPRequestHandler):
    """Keeps every POSTed Alertmanager payload."""

    payloads: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).payloads.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook(risk_run: RiskRun) -> Iterator[list[dict]]:
    """The receiver the session's Alertmanager is configured to POST to, listening for this test only."""
    url = urlparse(risk_run.settings.alerting.webhook() or "")
    assert url.hostname == "127.0.0.1" and url.port, "the test stack has no local webhook configured"
    handler = type("Receiver", (_Receiver,), {"payloads": []})
    server = ThreadingHTTPServer((url.hostname, url.port), handler)
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield handler.payloads
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _job_down_alerts(payloads: list[dict], since: float) -> list[dict]:
    """Firing LoanRiskJobDown alerts that started after ``since`` (epoch seconds)."""
    return [a for p in payloads for a in p["alerts"]
            if a["labels"].get("alertname") == "LoanRiskJobDown" and a["status"] == "firing"
            and datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")).timestamp() >= since]


def test_cancelling_the_job_fires_an_alert_that_alertmanager_delivers_to_the_webhook(
        risk_run: RiskRun, webhook: list[dict]) -> None:
    from stack.flink_client import cancel, job_state
    s = risk_run.settings
    firing = httpx.get(f"{s.prometheus.url}/api/v1/query", params={"query": 'ALERTS{alertname="LoanRiskJobDown"}'})
    assert job_state(s, risk_run.job_id) == "RUNNING"
    assert firing.json()["data"]["result"] == [], "the job runs, yet its down alert is active"

    cancelled_at = time.time()
    cancel(s, risk_run.job_id)
    # A scrape, the rule's pending (5 s here, 2 min as written), an evaluation and Alertmanager's group wait.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _job_down_alerts(webhook, cancelled_at):
        time.sleep(1)
    alerts = _job_down_alerts(webhook, cancelled_at)
    print(f"LoanRiskJobDown delivered {time.time() - cancelled_at:.0f} s after the cancel; "
          f"{len(webhook)} payloads in all")
    assert alerts, f"no LoanRiskJobDown reached the webhook within 120 s of the cancel; got {webhook}"
    payload = next(p for p in webhook if alerts[0] in p["alerts"])
    assert payload["receiver"] == "webhook" and payload["groupLabels"] == {"alertname": "LoanRiskJobDown"}
    assert alerts[0]["labels"]["severity"] == "critical"
    assert alerts[0]["annotations"]["runbook"] == "docs/RUNBOOK.md#loanriskjobdown"
    am = httpx.get(f"{s.alerting.url}/api/v2/alerts", params={"filter": 'alertname="LoanRiskJobDown"'}).json()
    assert [a["status"]["state"] for a in am] == ["active"], am
