"""The scoring API's OpenAPI document is committed (docs/openapi.json) and is the app's; `riskctl serve
--write-openapi` regenerates it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from contracts.events import LOAN_APPLICATION
from loanrisk.settings import Settings, override
from riskctl.commands.serve import serve
from scoring_api.server import OPENAPI_DOCUMENT, openapi_text


def test_the_committed_openapi_document_is_the_apps() -> None:
    assert OPENAPI_DOCUMENT.read_text() == openapi_text(Settings()), \
        "docs/openapi.json is stale: run `riskctl serve --write-openapi docs/openapi.json`"


def test_the_document_does_not_depend_on_the_settings_values() -> None:
    other = override(Settings(), api={"max_batch": 7, "approve_below": 0.01, "decline_at": 0.9, "port": 9999})
    assert openapi_text(other) == openapi_text(Settings())


def test_the_document_describes_both_routes_the_application_and_the_key() -> None:
    doc = json.loads(OPENAPI_DOCUMENT.read_text())
    assert {"/v1/score", "/v1/score:batch", "/healthz", "/readyz"} <= set(doc["paths"])
    application = doc["components"]["schemas"]["LoanApplication"]
    assert list(application["properties"]) == LOAN_APPLICATION.names
    assert application["required"] == LOAN_APPLICATION.required
    assert application["properties"]["term_months"]["maximum"] == 480
    assert "Personal data" in application["properties"]["full_name"]["description"]
    score = doc["paths"]["/v1/score"]["post"]
    assert score["security"] == [{"HTTPBearer": []}]
    assert {"401", "413", "422", "429", "503", "504"} <= set(score["responses"])


def test_riskctl_serve_writes_the_document(tmp_path: Path) -> None:
    path = tmp_path / "openapi.json"
    result = CliRunner().invoke(serve, ["--write-openapi", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_text() == OPENAPI_DOCUMENT.read_text()
