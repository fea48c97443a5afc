"""`riskctl setup`: the Flink runtime environment, the pinned jars, and a FLINK_HOME laid out from them."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from loanrisk.errors import SetupError
from loanrisk.settings import REPO_ROOT, Settings
from stack.jvm import build_functions, fetch_group, load_pins

FLINK_LOCK = REPO_ROOT / "requirements" / "flink.lock"
SPARK_LOCK = REPO_ROOT / "requirements" / "spark.lock"
SPARK_PEER_GROUP = "spark_peer"
Progress = Callable[[str], None]


def _uv() -> str:
    """The uv binary of the platform environment (installed by the bootstrap)."""
    candidate = Path(sys.prefix) / "bin" / "uv"
    found = str(candidate) if candidate.exists() else shutil.which("uv")
    if not found:
        raise SetupError("uv not found: run `make setup` (it installs uv into .venv) and try again")
    return found


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _ensure_env(prefix: Path, python: Path, lock: Path, what: str, log: Path,
                progress: Progress | None = None) -> None:
    """Create or sync the environment at ``prefix`` (interpreter ``python``) from ``lock``, unless its stamp says
    it already matches."""
    stamp = prefix / ".lock-digest"
    if stamp.exists() and stamp.read_text() == _digest(lock) and python.exists():
        return
    if progress is not None:
        progress(f"{what} ({lock.relative_to(REPO_ROOT)}) ...")
    uv = _uv()
    with log.open("a") as fh:
        if not python.exists():
            subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(prefix)], stdout=fh, stderr=fh, check=False)
        proc = subprocess.run([uv, "pip", "sync", "-q", "-p", str(python), str(lock)],
                              stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SetupError(f"could not install the {what} (see {log})")
    stamp.write_text(_digest(lock))


def ensure_flink_env(settings: Settings, log: Path) -> Path:
    """Create or sync the Flink runtime environment from requirements/flink.lock; returns its prefix."""
    prefix = settings.install_dir / "venvs" / "flink"
    _ensure_env(prefix, settings.flink_python, FLINK_LOCK, "Flink runtime environment", log)
    return prefix


def spark_python(settings: Settings) -> Path:
    """The interpreter of the Spark peer's environment (<install_dir>/venvs/spark)."""
    return settings.install_dir / "venvs" / "spark" / "bin" / "python"


def ensure_spark_peer(settings: Settings, progress: Progress = print) -> tuple[Path, list[Path]]:
    """The Spark peer's environment (requirements/spark.lock) and its pinned jars (group spark_peer, plus the
    Iceberg AWS bundle and PostgreSQL driver of group flink_lib, pinned there once); returns the interpreter and
    the jars. Installed on first use only (bench/spark_peer.py, `riskctl setup --spark-peer`), never by the default
    setup: pyspark and its jars are large, and only the Spark peer's benchmark needs them."""
    state = settings.install_dir
    (state / "logs").mkdir(parents=True, exist_ok=True)
    log = state / "logs" / "setup.log"
    python = spark_python(settings)
    _ensure_env(state / "venvs" / "spark", python, SPARK_LOCK, "Spark peer environment", log, progress)
    _, groups = load_pins()
    by_name = {g.name: g for g in groups}
    progress(f"JVM artifacts: {SPARK_PEER_GROUP} ...")
    ours = sorted(fetch_group(by_name[SPARK_PEER_GROUP], state / "jars", log).glob("*.jar"))
    shared = fetch_group(by_name["flink_lib"], state / "jars", log)
    jars = ours + [j for j in sorted(shared.glob("*.jar")) if j.name.startswith(("iceberg-aws-bundle-", "postgresql-"))]
    return python, jars


def pyflink_dir(settings: Settings) -> Path:
    """The installed pyflink package folder, which holds a complete Flink distribution."""
    found = sorted((settings.install_dir / "venvs" / "flink" / "lib").glob("python3*/site-packages/pyflink"))
    if not found:
        raise SetupError("pyflink is not installed in the Flink environment: run `riskctl setup`")
    return found[0]


def _link_all(src: Path, dst: Path) -> None:
    """Make ``dst`` a folder of symlinks to every entry of ``src``."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        link = dst / entry.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(entry)


def _layout_distribution(home: Path, wheel: Path, jar_dirs: dict[str, Path]) -> None:
    """``home`` = the wheel's bin/ (copied: the scripts find FLINK_HOME from where they are), its lib/ opt/
    plugins/ (linked), and the pinned plugins, each in a folder of its own."""
    for sub in ("lib", "opt", "plugins"):
        if (home / sub).exists():
            shutil.rmtree(home / sub)
    if (home / "bin").exists():
        shutil.rmtree(home / "bin")
    shutil.copytree(wheel / "bin", home / "bin")
    for sub in ("lib", "opt", "plugins"):
        _link_all(wheel / sub, home / sub)
    # Flink loads a plugin only from a folder of its own under plugins/ (in lib/ it would clash).
    for jar in jar_dirs["flink_plugins"].glob("*.jar") if "flink_plugins" in jar_dirs else ():
        folder = home / "plugins" / plugin_folder(jar.name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / jar.name).symlink_to(jar)
    (home / "log").mkdir(parents=True, exist_ok=True)


def layout_flink_home(settings: Settings, jar_dirs: dict[str, Path]) -> Path:
    """FLINK_HOME = the distribution (:func:`_layout_distribution`) plus the pinned jars in lib/ and opt/."""
    home = settings.flink_home
    _layout_distribution(home, pyflink_dir(settings), jar_dirs)
    ours = list(jar_dirs["functions"].glob("*.jar")) if "functions" in jar_dirs else []
    for jar in [*jar_dirs["flink_lib"].glob("*.jar"), *ours]:
        (home / "lib" / jar.name).symlink_to(jar)
    for jar in jar_dirs["flink_opt"].glob("*.jar"):
        (home / "opt" / jar.name).symlink_to(jar)
    # The SQL client needs the gateway classes on its classpath: it loads lib/ and its own jar.
    for jar in jar_dirs["flink_opt"].glob("flink-sql-gateway-*.jar"):
        (home / "lib" / jar.name).symlink_to(jar)
    return home


def layout_bare_flink_home(settings: Settings, jar_dirs: dict[str, Path]) -> Path:
    """<install_dir>/flink-bare: the distribution and its plugins only, what a cluster's image holds before any
    job: no connector, no function of ours. A local cluster run from it (flink.cluster_home=bare) takes every
    other jar, and its Python, from the job (jobs/shipping.py)."""
    home = settings.install_dir / "flink-bare"
    _layout_distribution(home, pyflink_dir(settings), jar_dirs)
    return home


def plugin_folder(jar_name: str) -> str:
    """The plugins/ folder of a plugin jar, named as Flink's own distribution does: flink-s3-fs-hadoop-2.1.1.jar
    -> s3-fs-hadoop."""
    found = re.match(r"(.+?)-\d.*\.jar$", jar_name)
    if found is None:
        raise SetupError(f"{jar_name} is not named <artifact>-<version>.jar: pin it by Maven coordinates")
    return found.group(1).removeprefix("flink-")


def s3_plugin_installed(settings: Settings) -> bool:
    """True when FLINK_HOME/plugins holds an S3 file system (the object store's s3:// scheme)."""
    return any((settings.flink_home / "plugins").glob("s3-fs-*/*.jar"))


def run_setup(settings: Settings, progress: Progress = print) -> dict[str, float]:
    """Run every setup step (each skips itself when already up to date); returns seconds per step."""
    state = settings.install_dir
    (state / "logs").mkdir(parents=True, exist_ok=True)
    log = state / "logs" / "setup.log"
    timings: dict[str, float] = {}
    t = time.monotonic()
    progress("Flink runtime environment (requirements/flink.lock) ...")
    ensure_flink_env(settings, log)
    timings["flink_env"] = time.monotonic() - t
    flink_version, groups = load_pins()
    jar_dirs: dict[str, Path] = {}
    for group in (g for g in groups if not g.on_demand):
        t = time.monotonic()
        progress(f"JVM artifacts: {group.name} ({len(group.artifacts)} pinned) ...")
        jar_dirs[group.name] = fetch_group(group, state / "jars", log)
        timings[f"jars_{group.name}"] = time.monotonic() - t
    t = time.monotonic()
    progress("loan-risk SQL functions (jvm/functions, Maven build) ...")
    jar_dirs["functions"] = build_functions(flink_version, state / "jars", log)
    timings["jars_functions"] = time.monotonic() - t
    t = time.monotonic()
    progress("FLINK_HOME layout ...")
    home = layout_flink_home(settings, jar_dirs)
    layout_bare_flink_home(settings, jar_dirs)
    installed = next(home.glob("lib/flink-dist*.jar"), None)
    if installed is None or flink_version not in installed.name:
        raise SetupError(f"FLINK_HOME has {installed.name if installed else 'no flink-dist'}, but "
                         f"jvm/artifacts.toml pins Flink {flink_version}: align requirements/flink.lock")
    timings["flink_home"] = time.monotonic() - t
    return timings
