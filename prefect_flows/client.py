"""The one place Prefect is pointed at the platform's Prefect server (PREFECT_API_URL from settings)."""

from __future__ import annotations

import os
import sys

from loanrisk.settings import Settings, get_settings


def prefect_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment variables a Prefect client or `serve` process of this platform needs."""
    s = settings or get_settings()
    return {"PREFECT_API_URL": s.prefect.url,
            "PREFECT_HOME": os.environ.get("PREFECT_HOME") or str(s.state_dir / "prefect-client"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_TO_API_ENABLED": "true"}


def configure(settings: Settings | None = None) -> str:
    """Point this process's Prefect client at ``settings.prefect.url`` (call before talking to Prefect)."""
    env = prefect_env(settings)
    os.environ.update(env)
    if "prefect.context" in sys.modules:  # prefect read its settings at import: make it read them again
        from prefect.context import refresh_global_settings_context
        refresh_global_settings_context()
    return env["PREFECT_API_URL"]


def server_reachable(settings: Settings | None = None, timeout_s: float = 3.0) -> bool:
    """True when the Prefect API answers /health."""
    import urllib.request

    url = (settings or get_settings()).prefect.url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status == 200
    except OSError:
        return False
