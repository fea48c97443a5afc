"""Writes the dashboards as JSON under grafana/dashboards/ and tells whether the committed JSON is stale."""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana.dashboards_code import DASHBOARDS

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"


def render_json() -> dict[str, str]:
    """File name -> the dashboard JSON text the code produces now (stable key order, trailing newline)."""
    out = {}
    for name, build in DASHBOARDS.items():
        model = json.loads(json.dumps(build(), cls=JSONEncoder))
        out[name] = json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def stale_files(directory: Path = DASHBOARD_DIR) -> list[str]:
    """Names of the dashboard files whose committed JSON differs from what the code builds (or is missing)."""
    return [name for name, text in render_json().items()
            if not (directory / name).exists() or (directory / name).read_text() != text]


def write(directory: Path = DASHBOARD_DIR) -> list[Path]:
    """Write every dashboard; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_json().items():
        (directory / name).write_text(text)
        paths.append(directory / name)
    return paths


def load(directory: Path = DASHBOARD_DIR) -> dict[str, dict]:
    """The committed dashboards, by file name."""
    return {name: json.loads((directory / name).read_text()) for name in DASHBOARDS}
