"""Benchmark: what each new Parquet data file costs the job's Iceberg writers, and the Hadoop Configuration in it.

The replay profile (docs/PERFORMANCE.md, "Files per checkpoint") shows a Hadoop ``Configuration`` parsed for every new
data file: Iceberg 1.11's Parquet writer builder makes ``new Configuration()`` for an output file that is not
Hadoop's, which is what the job's S3FileIO gives it, and the first property set parses Hadoop's default resources
(``core-default.xml``, and ``mapred-default.xml`` and ``yarn-default.xml`` once Parquet's Hadoop classes have
loaded: the program prints them). ``bench/java/ParquetFileOpenCost.java``, compiled here against the jars in FLINK_HOME/lib,
measures in one JVM the thread CPU per item of: a data file written whole (opened, one row, closed) on local disk;
that Configuration alone; and, the baseline, a Configuration without the default resources, what a writer that
skipped them would pay. It prints each round, the medians past the first (JIT warm-up), the Configuration's share of
a file, and what it comes to per event for a given number of files per million events.

Run: ``.venv/bin/python bench/parquet_file_open.py [--files 2000] [--rounds 5] [--files-per-million 873]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.job_throughput import log
from bench.snapshot_metadata import classpath, java_program
from loanrisk.settings import Settings

SOURCE = Path(__file__).resolve().parent / "java" / "ParquetFileOpenCost.java"


def measure(items: int, rounds: int, cp: str, work: Path) -> list[tuple[float, float, float]]:
    """Compile and run the program; (file, conf, bare) CPU ms per item, one tuple per round."""
    out = work / "files"
    out.mkdir()
    proc = subprocess.run([*java_program(SOURCE, cp, work, heap="1g"), str(items), str(rounds), str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ParquetFileOpenCost exited with {proc.returncode}: {proc.stderr.strip()[-500:]}")
    rows = []
    for line in proc.stdout.splitlines():
        if line.startswith("resources "):
            log(f"Hadoop default resources a new Configuration parses: {line.removeprefix('resources ')}")
            continue
        n, file_ms, conf_ms, bare_ms = line.split()
        rows.append((float(file_ms), float(conf_ms), float(bare_ms)))
        log(f"round {n}: a data file {float(file_ms):.3f} ms CPU; new Configuration() {float(conf_ms):.3f} ms; "
            f"without default resources {float(bare_ms):.3f} ms")
    return rows


def report(rows: list[tuple[float, float, float]], files_per_million: float) -> None:
    """Medians past the first round, the Configuration's share of a file and its cost per event."""
    warm = rows[1:]
    file_ms, conf_ms, bare_ms = (statistics.median(r[i] for r in warm) for i in range(3))
    parse_ms = conf_ms - bare_ms
    print(f"\nper new Parquet data file, thread CPU, median of {len(warm)} rounds after the first:")
    print(f"  {'a data file written whole (one row)':<52}{file_ms:>9.3f} ms")
    print(f"  {'new Configuration() with one property (the job)':<52}{conf_ms:>9.3f} ms")
    print(f"  {'without the default resources (baseline)':<52}{bare_ms:>9.3f} ms")
    print(f"the default resources parsed: {parse_ms:.3f} ms a file, {parse_ms / file_ms:.0%} of a one-row file's CPU")
    print(f"at {files_per_million:,.0f} data files per million events: {parse_ms * files_per_million / 1000:.2f} us "
          f"of CPU per event for the parse")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="files (and configurations) per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the first is left out as warm-up (default 5)")
    parser.add_argument("--files-per-million", type=float, default=873.0,
                        help="data files a drain commits per million events, to express the parse per event "
                             "(default 873: the floor with hash distribution on the replay backlog, "
                             "docs/PERFORMANCE.md, 'Files per checkpoint')")
    args = parser.parse_args(argv)
    if args.files < 1 or args.rounds < 2 or args.files_per_million < 0:
        parser.error("--files must be at least 1, --rounds at least 2, --files-per-million 0 or more")
    cp = classpath(Settings())
    with tempfile.TemporaryDirectory(prefix="parquet-open-bench-") as tmp:
        rows = measure(args.files, args.rounds, cp, Path(tmp))
    report(rows, args.files_per_million)
    return 0


if __name__ == "__main__":
    sys.exit(main())
