"""Runs the scoring API with uvicorn (one process: the scorer and its model are per process), and writes its
OpenAPI document."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from loanrisk.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)
OPENAPI_DOCUMENT = REPO_ROOT / "docs" / "openapi.json"


def openapi_text(settings: Settings) -> str:
    """The app's OpenAPI document as committed in docs/openapi.json (it does not depend on the settings' values)."""
    from scoring_api.app import create_app
    return json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False) + "\n"


def write_openapi(settings: Settings, path: Path = OPENAPI_DOCUMENT) -> Path:
    """Write the OpenAPI document to ``path``."""
    path.write_text(openapi_text(settings))
    return path


def run(settings: Settings) -> None:
    """Serve on api.host:api.port until interrupted; logs go through the process's logging setup (loanrisk/logs.py)."""
    import uvicorn

    from scoring_api.app import create_app

    api = settings.api
    log.info("scoring API on http://%s:%d (docs/API.md)", api.host, api.port)
    # log_config=None: uvicorn's own loggers go to the handlers setup_logging installed; no access log, as a
    # request line per call is noise at hundreds of requests a second (the metrics count them).
    uvicorn.run(create_app(settings, serving_process=True), host=api.host, port=api.port, log_config=None, access_log=False,
                server_header=False)
