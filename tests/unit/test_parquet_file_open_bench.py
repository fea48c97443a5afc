"""bench/parquet_file_open.py: its Java program run briefly against FLINK_HOME/lib's Iceberg, and its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.parquet_file_open import measure, report


def test_the_program_measures_each_item_every_round_and_the_report_takes_the_parse_from_the_baseline(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.snapshot_metadata import classpath
    from loanrisk.settings import Settings
    rows = measure(20, 2, classpath(Settings()), tmp_path)
    assert len(rows) == 2 and all(file_ms > 0 and conf_ms > 0 and bare_ms >= 0 for file_ms, conf_ms, bare_ms in rows)
    assert not list((tmp_path / "files").iterdir()), "the program left data files behind"
    report([(9.0, 9.0, 9.0), (4.0, 1.5, 0.5), (2.0, 1.1, 0.1)], files_per_million=1000)
    out = capsys.readouterr().out
    assert "median of 2 rounds after the first" in out and "1.000 ms a file, 33% of a one-row file's CPU" in out
    assert "1.00 us of CPU per event" in out
