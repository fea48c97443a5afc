"""`riskctl doctor`: checks the machine and the settings, one clear line per problem."""

from __future__ import annotations

import re
import shutil
import subprocess

from loanrisk.settings import Settings
from stack.jvm import load_pins
from stack.services import all_services


def _java_major() -> int | None:
    from stack.java import java_bin
    try:
        out = subprocess.run([java_bin(), "-version"], capture_output=True, text=True).stderr
    except Exception:  # noqa: BLE001
        return None
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else None


def run_checks(settings: Settings) -> tuple[list[str], list[str]]:
    """(problems, passed checks)."""
    problems: list[str] = []
    notes: list[str] = []
    major = _java_major()
    if major is None:
        problems.append("Java not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    elif major < 17:
        problems.append(f"Java {major} found; Flink 2.1 and Kafka 4 need Java 17: set JAVA_HOME to a JDK 17")
    else:
        notes.append(f"Java {major}")
    for exe, why in (("mvn", "setup fetches the pinned jars with it (apt-get install maven)"),
                     ("pg_config", "PostgreSQL runs the catalog and serving databases (apt-get install postgresql)"),
                     ("prometheus", "Prometheus scrapes Flink (apt-get install prometheus)"),
                     ("prometheus-alertmanager",
                      "Alertmanager routes the alerts (apt-get install prometheus-alertmanager)")):
        if shutil.which(exe) is None:
            problems.append(f"{exe} not on PATH: {why}")
        else:
            notes.append(f"{exe} found")
    flink_version, groups = load_pins()
    dist = next(settings.flink_home.glob("lib/flink-dist*.jar"), None)
    if dist is None:
        problems.append("FLINK_HOME not laid out: run `riskctl setup`")
    elif flink_version not in dist.name:
        problems.append(f"FLINK_HOME has {dist.name} but jvm/artifacts.toml pins {flink_version}: run `riskctl setup`")
    else:
        notes.append(f"Flink {flink_version} at {settings.flink_home}")
    for g in (g for g in groups if not g.on_demand):
        stamp = settings.install_dir / "jars" / g.name / ".fingerprint"
        if not stamp.exists() or stamp.read_text() != g.fingerprint():
            problems.append(f"jars of group {g.name} missing or out of date: run `riskctl setup`")
    free_gb = shutil.disk_usage(settings.state_dir if settings.state_dir.exists() else settings.state_dir.parent
                                ).free / 2**30
    (problems if free_gb < 5 else notes).append(f"{free_gb:.0f} GiB free for {settings.state_dir}"
                                                + (" (need 5 GiB)" if free_gb < 5 else ""))
    for svc in all_services(settings, with_prefect=True):
        if svc.pid() is not None:
            notes.append(f"{svc.name} running (pid {svc.pid()})")
            continue
        for purpose, port in svc.busy_ports():
            problems.append(f"port {port} ({svc.name} {purpose}) is in use by another program: set another port")
    return problems, notes
