"""Benchmark: what an Iceberg commit costs as a table keeps more snapshots, and what hourly expiry saves.

The job commits every lake table at every checkpoint, and each commit rewrites the table's metadata file, which
lists every snapshot kept. ``bench/java/SnapshotCommitCost.java`` (compiled here against the Iceberg runtime of
FLINK_HOME/lib) makes ``--commits`` such commits to one table on local disk, none expired, and reports every
``--step`` commits the snapshots kept, the metadata file's size and the process CPU per commit. From those this
prints, at the settings' checkpoint interval and safety age, the snapshots a busy table keeps at the worst moment
with the daily ``maintain_lake`` expiry alone (the baseline: a day and the safety age) and with the hourly
``expire_snapshots`` (an hour and the safety age), and the metadata size and commit CPU at each; a count past the
measured range is extrapolated along the fitted line and marked so. The object store's upload and download of
that file, which the job's commits also pay, are not in the figures.

Run: ``.venv/bin/python bench/snapshot_metadata.py [--commits 3000] [--step 250]`` (about five minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.job_throughput import log
from loanrisk.settings import Settings
from stack.java import java_bin

SOURCE = Path(__file__).resolve().parent / "java" / "SnapshotCommitCost.java"
JARS = ("iceberg-flink-runtime-*.jar", "hadoop-client-api-*.jar", "hadoop-client-runtime-*.jar", "flink-dist-*.jar",
        "log4j-api-*.jar", "log4j-core-*.jar", "log4j-slf4j-impl-*.jar")


def classpath(settings: Settings) -> str:
    """The jars the program needs, from FLINK_HOME/lib (the Iceberg release the job runs)."""
    lib = settings.flink_home / "lib"
    found = [next(iter(sorted(lib.glob(pattern))), None) for pattern in JARS]
    missing = [p for p, f in zip(JARS, found) if f is None]
    if missing:
        raise SystemExit(f"FLINK_HOME/lib lacks {', '.join(missing)}: run `make setup` first")
    return ":".join(str(f) for f in found)


def java_program(source: Path, cp: str, work: Path, heap: str = "2g") -> list[str]:
    """Compile ``source`` (one class of bench/java) against ``cp`` into ``work``; the command that runs it."""
    javac = str(Path(java_bin()).with_name("javac"))
    subprocess.run([javac, "-nowarn", "-cp", cp, "-d", str(work), str(source)], check=True)
    return [java_bin(), f"-Xmx{heap}", "-cp", f"{cp}:{work}", source.stem]


def measure(commits: int, step: int, cp: str, work: Path) -> list[tuple[int, int, float, float]]:
    """Compile and run the program; (snapshots, metadata bytes, CPU ms per commit, wall ms per commit) per step."""
    proc = subprocess.Popen([*java_program(SOURCE, cp, work), str(commits), str(step), str(work / "warehouse")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    rows = []
    for line in proc.stdout:
        n, size, cpu_ms, wall_ms = line.split()
        rows.append((int(n), int(size), float(cpu_ms), float(wall_ms)))
        log(f"{int(n):>6,} snapshots: metadata file {int(size):>11,} bytes; {float(cpu_ms):.1f} ms CPU, "
            f"{float(wall_ms):.1f} ms wall per commit")
    if proc.wait() != 0:
        raise SystemExit(f"SnapshotCommitCost exited with {proc.returncode}")
    return rows


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares line through ``points``: (intercept, slope)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope


def kept_at_worst(interval_s: float, min_age_h: float, expiry_every_h: float) -> int:
    """Snapshots of a table committed every ``interval_s`` just before the next expiry: the safety age plus the
    time since the last one."""
    return int((min_age_h + expiry_every_h) * 3600 / interval_s)


def report(rows: list[tuple[int, int, float, float]], step: int, interval_s: float, min_age_h: float) -> None:
    """The measured steps, then the two schedules' worst moments side by side."""
    print(f"\nIceberg commits to one table, none expired (process CPU per commit over each step of {step}):")
    print(f"{'snapshots':>10}{'metadata file':>16}{'bytes/snapshot':>16}{'CPU ms/commit':>15}{'wall ms/commit':>16}")
    for n, size, cpu_ms, wall_ms in rows:
        print(f"{n:>10,}{size:>16,}{size / n:>16,.0f}{cpu_ms:>15.1f}{wall_ms:>16.1f}")
    # Each step's CPU is the mean over its commits, so it belongs at the step's middle; the first step also holds
    # the JVM's warm-up (its JIT compiles the commit path), so the line leaves it out.
    intercept, slope = fit([(n - step / 2, cpu) for n, _, cpu, _ in rows[1:]])
    per_snapshot = rows[-1][1] / rows[-1][0]
    measured_to = rows[-1][0]
    print(f"\nfitted past the first step: {intercept:.1f} ms + {slope * 1000:.1f} ms per 1,000 snapshots kept; "
          f"{per_snapshot:,.0f} bytes of metadata per snapshot")
    print(f"a table committed every {interval_s:g} s, snapshots younger than {min_age_h:g} h never expired "
          f"(prefect.snapshot_min_age_h), just before its next expiry:")
    print(f"{'expiry':<44}{'snapshots':>10}{'metadata file':>16}{'CPU ms/commit':>15}")
    kept = {every_h: kept_at_worst(interval_s, min_age_h, every_h) for every_h in (24.0, 1.0)}
    cpu = {every_h: intercept + slope * n for every_h, n in kept.items()}
    for label, every_h in (("daily, maintain_lake alone (baseline)", 24.0), ("hourly, expire_snapshots", 1.0)):
        mark = " (extrapolated)" if kept[every_h] > measured_to else ""
        print(f"{label:<44}{kept[every_h]:>10,}{kept[every_h] * per_snapshot / 1e6:>13.1f} MB"
              f"{cpu[every_h]:>15.1f}{mark}")
    print(f"hourly against daily at the worst moment: {cpu[1.0] / cpu[24.0]:.2f} x the CPU per commit and "
          f"{kept[1.0] / kept[24.0]:.2f} x the metadata written and read")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=3000, help="commits to make (default 3000)")
    parser.add_argument("--step", type=int, default=250, help="commits per reading (default 250)")
    args = parser.parse_args(argv)
    if args.step < 1 or args.commits < 3 * args.step:
        parser.error("--commits must be at least three times --step, and --step at least 1")
    settings = Settings()
    cp = classpath(settings)
    with tempfile.TemporaryDirectory(prefix="snapshot-bench-") as tmp:
        rows = measure(args.commits, args.step, cp, Path(tmp))
    report(rows, args.step, settings.flink.checkpoint_interval_ms / 1000, settings.prefect.snapshot_min_age_h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
