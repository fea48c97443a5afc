"""Debian packages the local stack needs (PostgreSQL, Prometheus, Alertmanager), installed when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

from loanrisk.errors import SetupError

# executable that proves the package is there -> Debian package
PACKAGES: dict[str, str] = {"pg_config": "postgresql", "prometheus": "prometheus",
                             "prometheus-alertmanager": "prometheus-alertmanager", "mvn": "maven"}


def missing_packages() -> list[str]:
    """Debian packages whose executables are not on PATH."""
    return [pkg for exe, pkg in PACKAGES.items() if shutil.which(exe) is None]


def ensure_system_packages(progress: Callable[[str], None] = print) -> None:
    """apt-get install what is missing (needs root); otherwise name the command to run."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise SetupError(f"missing system packages: run `sudo apt-get install {' '.join(missing)}`")
    progress(f"apt-get install {' '.join(missing)} ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"apt-get install {' '.join(missing)} failed: {proc.stderr.strip()[-200:]}")
