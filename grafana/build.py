"""Builds the dashboards for the settings, writes them as JSON under grafana/dashboards/ and tells whether
the committed JSON is stale.

The committed files are those of the configuration they were built with (the defaults in the repository);
`riskctl dashboards render` and `publish` build from the running settings instead, so a configured alert
threshold colours what they draw even before anyone rebuilds the files.
"""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana.dashboards_code import DASHBOARDS
from loanrisk.settings import Settings

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"


def dashboards(settings: Settings) -> dict[str, dict]:
    """File name -> the dashboard model (decoded JSON) the code builds for ``settings``."""
    return {name: json.loads(json.dumps(build(settings), cls=JSONEncoder)) for name, build in DASHBOARDS.items()}


def render_json(settings: Settings) -> dict[str, str]:
    """File name -> the dashboard JSON text for ``settings`` (stable key order, trailing newline)."""
    return {name: json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for name, model in dashboards(settings).items()}


def stale_files(settings: Settings, directory: Path = DASHBOARD_DIR) -> list[str]:
    """Names of the dashboard files whose committed JSON differs from what the code builds (or is missing)."""
    return [name for name, text in render_json(settings).items()
            if not (directory / name).exists() or (directory / name).read_text() != text]


def write(settings: Settings, directory: Path = DASHBOARD_DIR) -> list[Path]:
    """Write every dashboard built for ``settings``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_json(settings).items():
        (directory / name).write_text(text)
        paths.append(directory / name)
    return paths


def load(directory: Path = DASHBOARD_DIR) -> dict[str, dict]:
    """The committed dashboards, by file name."""
    return {name: json.loads((directory / name).read_text()) for name in DASHBOARDS}
