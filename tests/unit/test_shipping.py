"""What the risk job ships to a cluster that shares nothing with the client (jobs/shipping.py)."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from jobs.params import risk_job_params
from jobs.shipping import ARCHIVE_DIR, ensure_python_archive, python_archive, shipping_conf
from loanrisk.settings import Settings


def _settings(tmp_path: Path, **flink: object) -> Settings:
    return Settings(stack={"install_dir": tmp_path / "install", "state_dir": tmp_path / "state"}, flink=flink)


def _fake_install(tmp_path: Path) -> Path:
    """A Flink runtime environment in miniature: an interpreter link, a package, pyflink with its JVM folders."""
    install = tmp_path / "install"
    venv = install / "venvs" / "flink"
    site = venv / "lib" / "python3.11" / "site-packages"
    for folder in ("bin", "pyflink/lib", "pyflink/opt", "pyflink/fn_execution", "pandas"):
        (site / folder if folder != "bin" else venv / folder).mkdir(parents=True, exist_ok=True)
    interpreter = tmp_path / "python3.11"
    interpreter.write_bytes(b"\x7fELF interpreter")
    interpreter.chmod(0o755)
    (venv / "bin" / "python").symlink_to(interpreter)
    (venv / "pyvenv.cfg").write_text(f"home = {tmp_path}\n")
    (venv / "lib64").symlink_to(venv / "lib")
    (site / "pyflink" / "lib" / "flink-dist.jar").write_bytes(b"jar")
    (site / "pyflink" / "opt" / "flink-python.jar").write_bytes(b"jar")
    (site / "pyflink" / "fn_execution" / "boot.py").write_text("# worker\n")
    (site / "pandas" / "__init__.py").write_text("# pandas\n")
    for group, name in (("flink_lib", "iceberg-flink-runtime.jar"), ("functions", "loanrisk-flink-functions.jar"),
                        ("flink_opt", "flink-sql-gateway.jar")):
        (install / "jars" / group).mkdir(parents=True, exist_ok=True)
        (install / "jars" / group / name).write_bytes(b"jar")
    return install


def test_a_shared_cluster_ships_nothing_and_a_bare_or_remote_one_ships_jars_and_python(tmp_path: Path) -> None:
    install = _fake_install(tmp_path)
    assert shipping_conf(_settings(tmp_path)) == {}
    assert "pipeline.jars" not in risk_job_params(_settings(tmp_path)).flink_conf
    for flink in ({"cluster_home": "bare"}, {"remote_url": "http://flink.example:8081"}, {"ship_dependencies": True}):
        conf = shipping_conf(_settings(tmp_path, **flink))
        assert conf["pipeline.jars"] == ";".join(
            (install / "jars" / g / n).as_uri() for g, n in (("flink_lib", "iceberg-flink-runtime.jar"),
                                                              ("functions", "loanrisk-flink-functions.jar")))
        archive, _, target = str(conf["python.archives"]).partition("#")
        assert target == ARCHIVE_DIR and archive == str(python_archive(_settings(tmp_path)))
        assert conf["python.executable"] == f"{ARCHIVE_DIR}/bin/python"
        assert risk_job_params(_settings(tmp_path, **flink)).flink_conf["pipeline.jars"] == conf["pipeline.jars"]


def test_the_archive_holds_the_environment_without_pyflinks_jars_and_an_executable_interpreter(tmp_path: Path) -> None:
    _fake_install(tmp_path)
    settings = _settings(tmp_path, cluster_home="bare")
    archive = ensure_python_archive(settings, progress=lambda _m: None)
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        mode = zf.getinfo("bin/python").external_attr >> 16
        interpreter = zf.read("bin/python")
    assert {"bin/python", "pyvenv.cfg", "lib/python3.11/site-packages/pandas/__init__.py",
            "lib/python3.11/site-packages/pyflink/fn_execution/boot.py"} <= names
    assert not any("/pyflink/lib/" in n or "/pyflink/opt/" in n or n.startswith("lib64/") for n in names), names
    assert interpreter == b"\x7fELF interpreter" and stat.S_IMODE(mode) & stat.S_IXUSR
    # Named by the lock's digest: made once, reused by every later submission.
    before = os.stat(archive).st_mtime_ns
    assert ensure_python_archive(settings, progress=lambda _m: None) == archive
    assert os.stat(archive).st_mtime_ns == before


def test_a_new_lock_s_archive_removes_all_but_the_newest_earlier_one(tmp_path: Path) -> None:
    _fake_install(tmp_path)
    s = _settings(tmp_path, ship_dependencies=True)
    ship = python_archive(s).parent
    ship.mkdir(parents=True)
    for age, name in enumerate(("flink-env-bbbb.zip", "flink-env-aaaa.zip", "flink-env-cccc.partial")):
        (ship / name).write_bytes(b"old")
        os.utime(ship / name, (1_700_000_000 - age * 3600,) * 2)
    archive = ensure_python_archive(s, progress=lambda _: None)
    assert sorted(p.name for p in ship.iterdir()) == sorted([archive.name, "flink-env-bbbb.zip"])
    assert ensure_python_archive(s, progress=lambda _: None) == archive  # made once: nothing more removed
    assert (ship / "flink-env-bbbb.zip").exists()
