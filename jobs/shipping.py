"""What the risk job carries to a cluster that shares nothing with the client (flink.ships): the connector and
function jars as ``pipeline.jars``, the Flink runtime Python environment as ``python.archives``.

The cluster then needs Flink, its plugins (the S3 file system, the metrics reporter) and a Python 3.11 at the
path the environment was made from (a virtual environment keeps its interpreter's standard library outside):
what its image holds. `flink run` uploads the jars and the archive to the JobManager's blob server, and each
TaskManager extracts the archive once per job, beside its Python workers.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

from loanrisk.settings import REPO_ROOT, Settings

# The folder the archive is extracted to, in the Python workers' working directory.
ARCHIVE_DIR = "flinkenv"
# pyflink's JVM side: the workers never start a JVM, and the cluster has its own Flink.
_JVM_FOLDERS = {"lib", "opt", "plugins", "examples", "log", "conf"}


def shipped_jars(settings: Settings) -> list[Path]:
    """The pinned connector jars (jvm/artifacts.toml, group flink_lib) and the project's SQL functions."""
    jars = settings.install_dir / "jars"
    return sorted([*(jars / "flink_lib").glob("*.jar"), *(jars / "functions").glob("*.jar")])


def python_archive(settings: Settings) -> Path:
    """The archive of the Flink runtime environment made from requirements/flink.lock as it is now."""
    digest = hashlib.sha256((REPO_ROOT / "requirements" / "flink.lock").read_bytes()).hexdigest()[:16]
    return settings.install_dir / "ship" / f"flink-env-{digest}.zip"


def _venv_root(settings: Settings) -> Path:
    return settings.flink_python.parent.parent


def _entries(venv: Path) -> list[tuple[Path, str]]:
    """(file, name in the archive) for every file of the environment but pyflink's JVM folders; symbolic
    links to files are stored as the file (the interpreter is one), links to folders are left out."""
    out: list[tuple[Path, str]] = []
    for folder, dirs, files in os.walk(venv):
        here = Path(folder)
        if here.name == "pyflink" and here.parent.name == "site-packages":
            dirs[:] = [d for d in dirs if d not in _JVM_FOLDERS]
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
        for name in files:
            path = here / name
            if path.exists():
                out.append((path, str(path.relative_to(venv))))
    return sorted(out, key=lambda e: e[1])


def ensure_python_archive(settings: Settings, progress: Callable[[str], None] = print) -> Path:
    """Make the archive unless it exists (its name carries the lock's digest); returns its path."""
    archive = python_archive(settings)
    if archive.exists():
        return archive
    venv = _venv_root(settings)
    entries = _entries(venv)
    progress(f"packing the Flink runtime environment for the cluster ({len(entries)} files) into {archive} ...")
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    # Level 1: the archive travels once per submission over the blob server; size matters less than time.
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for n, (path, name) in enumerate(entries, 1):
            zf.write(path, name)  # with its Unix mode, which Flink restores: the interpreter stays executable
            if n % 5000 == 0:
                progress(f"  {n}/{len(entries)} files")
    partial.replace(archive)
    for old in prune_python_archives(settings):
        progress(f"removed {old}, an archive of an earlier requirements/flink.lock")
    return archive


def prune_python_archives(settings: Settings, keep_earlier: int = 1) -> list[Path]:
    """Delete the archives of earlier lock files but the newest ``keep_earlier``; returns what was deleted.

    One archive (about 160 MB) is made per lock digest, and nothing else ever reads an old one. The newest
    earlier one stays: a job submitted before the last upgrade names it, and the supervisor resubmits that job
    as it was if its JobManager dies before someone submits it again.
    """
    current = python_archive(settings)
    earlier = sorted((p for p in current.parent.glob("flink-env-*.zip") if p != current),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    partials = [p for p in current.parent.glob("flink-env-*.partial") if p != current.with_suffix(".partial")]
    gone = [*earlier[keep_earlier:], *partials]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone


def shipping_conf(settings: Settings) -> dict[str, object]:
    """The job's configuration that ships its dependencies; empty when the cluster shares the client's paths."""
    if not settings.flink.ships:
        return {}
    return {"pipeline.jars": ";".join(p.as_uri() for p in shipped_jars(settings)),
            "python.archives": f"{python_archive(settings)}#{ARCHIVE_DIR}",
            "python.executable": f"{ARCHIVE_DIR}/bin/python"}
