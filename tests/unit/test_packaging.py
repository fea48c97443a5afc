"""`pip install .` gives a riskctl that runs, and pyproject.toml's ranges admit what the lock installs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from loanrisk.settings import REPO_ROOT

LOCK = REPO_ROOT / "requirements" / "platform.lock"


def locked_versions() -> dict[str, str]:
    """name -> pinned version of every package in the platform lock."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith((" ", "#")) and "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def declared() -> list[Requirement]:
    """The runtime dependencies and the dev group of pyproject.toml."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return [Requirement(r) for r in [*project["project"]["dependencies"], *project["dependency-groups"]["dev"]]]


def test_every_declared_dependency_is_in_the_lock_at_a_version_its_range_admits() -> None:
    pins = locked_versions()
    for req in declared():
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req} is declared but not locked: recompile requirements/platform.lock (see its header)"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"the lock pins {name}=={pins[name]}, outside {req}: recompile the lock or widen the range"


@pytest.mark.install
def test_a_plain_install_into_a_fresh_environment_gives_a_riskctl_that_runs(tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not installed: run `make setup` (scripts/bootstrap.sh installs it into .venv)")
    # A copy of what the wheel is built from, so the build leaves no build/ or egg-info in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        folder = REPO_ROOT / pattern.rstrip("*")
        shutil.copytree(folder, source / folder.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # The lock as constraints: the versions the tests run with, mostly already in uv's cache.
    subprocess.run([uv, "pip", "install", "-q", "-p", str(python), "-c", str(LOCK), str(source)], check=True,
                   timeout=900, cwd=tmp_path)
    out = subprocess.run([str(venv / "bin" / "riskctl"), "--help"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Commands:" in out.stdout and "stack" in out.stdout and "warehouse" in out.stdout
    tools = subprocess.run([str(python), "-c", "import importlib.util as u; print([m for m in "
                            "('pytest', 'moto', 'ruff', 'mypy') if u.find_spec(m)])"],
                           capture_output=True, text=True, timeout=120, check=True)
    assert tools.stdout.strip() == "[]", "test and lint tools belong in the dev group, not the runtime dependencies"
