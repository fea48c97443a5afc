"""What the Flink workers get: the folders shipped with the job, imported in the Flink environment alone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from udfs import WORKER_PACKAGES

REPO = Path(__file__).resolve().parents[2]

# Prints the repository packages the import loaded and where from.
LOADED_FROM = r"""
import json, sys
import udfs.flink_udf
print(json.dumps({name: getattr(module, "__file__", None) for name, module in sys.modules.items()
                  if "." not in name and name in sys.argv[1:]}))
"""


def flink_python() -> Path:
    """The Flink environment's interpreter (the one the workers run)."""
    from loanrisk.settings import get_settings

    python = get_settings().flink_python
    if not python.exists():
        pytest.fail(f"{python} missing: run `make setup` (riskctl setup) first")
    return python


def shipped(tmp_path: Path, names: tuple[str, ...]) -> Path:
    """A folder holding only ``names`` from the repository, as Flink lays out the shipped folders."""
    root = tmp_path / "shipped"
    root.mkdir()
    for name in names:
        (root / name).symlink_to(REPO / name, target_is_directory=True)
    return root


def run_alone(python: Path, root: Path, code: str, *args: str,
              no_site: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with only ``root`` on the path beside the interpreter's own (and no site-packages if asked)."""
    cmd = [str(python), *(["-S"] if no_site else []), "-c", code, *args]
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_contracts_import_with_the_standard_library_alone(tmp_path: Path) -> None:
    """contracts/ is shipped to the workers, so it must need nothing the Flink environment may lack."""
    modules = sorted(f"contracts.{p.stem}" for p in (REPO / "contracts").glob("*.py") if p.stem != "__init__")
    root = shipped(tmp_path, ("contracts",))
    proc = run_alone(flink_python(), root, "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)",
                     *modules, no_site=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_udfs_load_in_the_flink_environment_from_the_shipped_folders_and_need_all_of_them(tmp_path: Path) -> None:
    """Every shipped folder is imported by udfs.flink_udf, and no other repository folder is needed."""
    root = shipped(tmp_path, WORKER_PACKAGES)
    repository_packages = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").exists())
    proc = run_alone(flink_python(), root, LOADED_FROM, *repository_packages)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(loaded) == sorted(WORKER_PACKAGES)
    assert all(str(file).startswith(str(root)) for file in loaded.values()), loaded


def test_the_risk_job_and_the_sql_client_ship_those_folders() -> None:
    from loanrisk.settings import Settings
    from jobs.submit import risk_job_python_files
    from jobs.sql_client import init_statements

    assert risk_job_python_files() == [REPO / "jobs", *(REPO / name for name in WORKER_PACKAGES)]
    files = ",".join(str(REPO / name) for name in WORKER_PACKAGES)
    assert f"SET 'python.files' = '{files}'" in init_statements(Settings())
