"""A failed flow run notifies: always one log line, plus a JSON POST to settings.prefect.failure_webhook when set."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from loanrisk.settings import get_settings

log = logging.getLogger("loanrisk.flows")


def failure_payload(flow_name: str, run_name: str, run_id: str, state_name: str, message: str) -> dict[str, Any]:
    """What the webhook receives about a failed run."""
    return {"event": "flow_run_failed", "flow": flow_name, "flow_run": run_name, "flow_run_id": run_id,
            "state": state_name, "message": message, "prefect_url": get_settings().prefect.url}


def post_webhook(url: str, payload: dict[str, Any], timeout_s: float) -> int:
    """POST ``payload`` as JSON; returns the HTTP status (raises OSError when unreachable)."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "loanrisk-flows"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return int(resp.status)


def notify(flow_name: str, run_name: str, run_id: str, state_name: str, message: str) -> bool:
    """Log one line about a failed run and POST it to the webhook if configured; True when the POST succeeded."""
    line = f"flow {flow_name} run {run_name} ({run_id}) ended {state_name}: {message}"
    log.error(line)
    try:
        from prefect.logging import get_run_logger
        get_run_logger().error(line)
    except Exception:  # noqa: BLE001 - outside a run context the plain logger above suffices
        pass
    p = get_settings().prefect
    if not p.failure_webhook:
        return False
    try:
        status = post_webhook(p.failure_webhook, failure_payload(flow_name, run_name, run_id, state_name, message),
                              p.webhook_timeout_s)
    except OSError as exc:
        log.error("failure webhook %s unreachable: %s", p.failure_webhook, exc)
        return False
    if status >= 300:
        log.error("failure webhook %s answered HTTP %s", p.failure_webhook, status)
    return status < 300


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect on_failure hook: :func:`notify` with the run's names and the state's message."""
    notify(getattr(flow, "name", "?"), getattr(flow_run, "name", "?"), str(getattr(flow_run, "id", "?")),
           getattr(state, "name", "Failed"), (getattr(state, "message", None) or "").strip() or "no message")
