"""The .env file docker-compose.yml takes its secrets from: a distinct generated secret per role, never committed.

The variables are the ones docker-compose.yml requires (``${NAME:?...}``), so the compose file stays the one
list of them. The ones it has a default for (``${NAME:-default}``: names, the bucket, the alert webhook) are
written commented out with that default, so the file shows everything a user may set.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from loanrisk.errors import StackError
from loanrisk.files import write_private
from loanrisk.settings import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
_REQUIRED = re.compile(r"\$\{([A-Z][A-Z0-9_]*):\?")
_DEFAULTED = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}")


def required_variables(compose_text: str) -> list[str]:
    """The variables a compose file refuses to start without, in order of first use."""
    return list(dict.fromkeys(_REQUIRED.findall(compose_text)))


def optional_variables(compose_text: str) -> dict[str, str]:
    """The variables a compose file has a default for, each with its (first) default, in order of first use."""
    found: dict[str, str] = {}
    for name, default in _DEFAULTED.findall(compose_text):
        found.setdefault(name, default)
    return found


def write_env_file(path: Path, force: bool = False, compose_file: Path = COMPOSE_FILE) -> list[str]:
    """Write ``path`` (mode 0600) with a fresh random value for every required variable; returns their names.

    An existing file is kept unless ``force``: its secrets are already in the stack's volumes (PostgreSQL
    sets its passwords once, when its volume is created).
    """
    if path.exists() and not force:
        raise StackError(f"{path} exists and its secrets may already be in use by the compose volumes: keep it, "
                         "or pass --force to replace it (then remove the volumes: docker compose down -v)")
    text = compose_file.read_text()
    names = required_variables(text)
    optional = "".join(f"# {name}={default}\n" for name, default in optional_variables(text).items())
    write_private(path, "# docker compose secrets for loan-risk, made by `riskctl stack compose-env`; never commit "
                        "this file\n" + "".join(f"{name}={secrets.token_urlsafe(24)}\n" for name in names)
                  + ("# Optional, shown with the default docker-compose.yml uses: uncomment to change\n" + optional
                     if optional else ""))
    return names
