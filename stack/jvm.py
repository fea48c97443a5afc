"""Fetches the pinned JVM artifacts (jvm/artifacts.toml) with Maven into .loanrisk/jars/<group>/."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from loanrisk.errors import SetupError
from loanrisk.settings import REPO_ROOT

ARTIFACTS_FILE = REPO_ROOT / "jvm" / "artifacts.toml"


@dataclass(frozen=True)
class ArtifactGroup:
    """A set of artifacts fetched into one folder."""

    name: str
    artifacts: tuple[str, ...]
    transitive: bool
    # Fetched only by what needs it (the Spark peer's benchmark), never by `riskctl setup` or checked by doctor.
    on_demand: bool = False

    def fingerprint(self) -> str:
        """Changes whenever the group's pins change, so setup knows when to refetch."""
        text = f"{self.transitive}|" + "|".join(self.artifacts)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_pins(path: Path = ARTIFACTS_FILE) -> tuple[str, list[ArtifactGroup]]:
    """The pinned Flink version and the artifact groups."""
    data = tomllib.loads(path.read_text())
    groups = [ArtifactGroup(name, tuple(g["artifacts"]), bool(g["transitive"]), bool(g.get("on_demand", False)))
              for name, g in data["groups"].items()]
    return data["flink"]["version"], groups


def _pom(group: ArtifactGroup) -> str:
    """A throwaway POM whose dependencies are the group's artifacts."""
    deps = []
    for coord in group.artifacts:
        g, a, v = coord.split(":")
        # A wildcard exclusion keeps Maven from even resolving the tree of a shaded bundle.
        excl = "" if group.transitive else "<exclusions><exclusion><groupId>*</groupId>" \
            "<artifactId>*</artifactId></exclusion></exclusions>"
        deps.append(f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version>"
                    f"{excl}</dependency>")
    return ("<project xmlns='http://maven.apache.org/POM/4.0.0'><modelVersion>4.0.0</modelVersion>"
            f"<groupId>loanrisk.setup</groupId><artifactId>{group.name.replace('_', '-')}</artifactId>"
            "<version>1</version><packaging>pom</packaging>"
            f"<dependencies>{''.join(deps)}</dependencies></project>")


def _maven(args: list[str], log: Path) -> int:
    """Run ``mvn -B -q ARGS`` with its output appended to ``log``; returns the exit code."""
    if shutil.which("mvn") is None:
        raise SetupError("Maven (mvn) is not on PATH: install it (apt-get install maven) and run setup again")
    cmd = ["mvn", "-B", "-q", *args]
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode


def fetch_group(group: ArtifactGroup, jars_dir: Path, log: Path) -> Path:
    """Fetch one group unless its folder already matches the pins; returns the folder."""
    out = jars_dir / group.name
    stamp = out / ".fingerprint"
    if stamp.exists() and stamp.read_text() == group.fingerprint():
        return out
    if out.exists():
        shutil.rmtree(out)
    work = jars_dir / f".pom-{group.name}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(_pom(group))
    if _maven(["-f", str(work / "pom.xml"), "dependency:copy-dependencies", f"-DoutputDirectory={out}",
               "-DincludeScope=runtime", f"-DexcludeTransitive={'false' if group.transitive else 'true'}"], log) != 0:
        raise SetupError(f"Maven could not fetch group {group.name!r} (see {log}); check jvm/artifacts.toml pins")
    stamp.write_text(group.fingerprint())
    shutil.rmtree(work, ignore_errors=True)
    return out


FUNCTIONS_DIR = REPO_ROOT / "jvm" / "functions"


def _sources_fingerprint(folder: Path, flink_version: str) -> str:
    """Changes whenever the module's POM or a source file changes (or the Flink pin does)."""
    digest = hashlib.sha256(flink_version.encode())
    for path in sorted([folder / "pom.xml", *(folder / "src").rglob("*")]):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def build_functions(flink_version: str, jars_dir: Path, log: Path, folder: Path = FUNCTIONS_DIR) -> Path:
    """Build loan-risk's Java SQL functions (jvm/functions) against the pinned Flink; returns the jar's folder."""
    out = jars_dir / "functions"
    stamp = out / ".fingerprint"
    fingerprint = _sources_fingerprint(folder, flink_version)
    if stamp.exists() and stamp.read_text() == fingerprint and any(out.glob("*.jar")):
        return out
    code = _maven(["-f", str(folder / "pom.xml"), f"-Dflink.version={flink_version}", "package"], log)
    jar = folder / "target" / "loanrisk-flink-functions.jar"
    if code != 0 or not jar.exists():
        raise SetupError(f"Maven could not build jvm/functions (see {log})")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(jar, out / jar.name)
    stamp.write_text(fingerprint)
    return out
