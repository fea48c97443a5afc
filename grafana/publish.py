"""Pushes the provisioned datasources and the generated dashboards to a real Grafana over its HTTP API."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from grafana.build import dashboards
from loanrisk.errors import LoanRiskError
from loanrisk.settings import Settings

PROVISIONING = Path(__file__).resolve().parent / "provisioning"
DATASOURCES_YAML = PROVISIONING / "datasources" / "datasources.yaml"
FOLDER_UID = "loan-risk"


class PublishError(LoanRiskError):
    """Grafana refused or could not be reached."""


def expand_env(value: Any) -> Any:
    """Grafana's provisioning interpolation: $VAR and ${VAR} from the environment (empty when unset)."""
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: os.environ.get(m.group(1) or m.group(2), ""), value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def provisioned_datasources(path: Path = DATASOURCES_YAML) -> list[dict[str, Any]]:
    """The datasources of the provisioning file, as the HTTP API takes them (environment expanded)."""
    doc = yaml.safe_load(path.read_text())
    out = []
    for ds in doc.get("datasources", []):
        body = {"access": "proxy", **expand_env(ds)}
        body.pop("version", None)
        out.append(body)
    return out


def publish(settings: Settings, url: str, token: str, folder: str = "loan-risk",
            overrides: dict[str, str] | None = None) -> list[str]:
    """Create or update every datasource, the folder and both dashboards (built for ``settings``); returns one line
    per object."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException

    api = GrafanaApi.from_url(url, credential=token, timeout=15.0)
    done = []
    try:
        for ds in provisioned_datasources():
            if overrides and ds["uid"] in overrides:
                ds["url"] = overrides[ds["uid"]]
            try:
                api.datasource.get_datasource_by_uid(ds["uid"])
                api.datasource.update_datasource_by_uid(ds["uid"], ds)
                done.append(f"datasource {ds['uid']} updated")
            except GrafanaClientError as exc:
                if exc.status_code != 404:
                    raise
                api.datasource.create_datasource(ds)
                done.append(f"datasource {ds['uid']} created")
        if not any(f.get("uid") == FOLDER_UID for f in api.folder.get_all_folders()):
            api.folder.create_folder(folder, uid=FOLDER_UID)
        for name, model in dashboards(settings).items():
            api.dashboard.update_dashboard({"dashboard": {**model, "id": None}, "folderUid": FOLDER_UID,
                                            "overwrite": True, "message": "riskctl dashboards publish"})
            done.append(f"dashboard {model['uid']} ({name}) published")
    except GrafanaException as exc:
        raise PublishError(f"Grafana at {url} refused: {exc}") from None
    except OSError as exc:
        raise PublishError(f"cannot reach Grafana at {url}: {exc}") from None
    return done
