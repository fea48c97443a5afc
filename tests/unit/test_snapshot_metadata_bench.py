"""bench/snapshot_metadata.py's arithmetic: the worst moment of each expiry schedule and the fitted commit cost."""

from __future__ import annotations

import re

import pytest

from bench.snapshot_metadata import fit, kept_at_worst, report


def test_a_table_committed_every_ten_seconds_keeps_the_safety_age_and_the_time_since_the_last_expiry() -> None:
    assert kept_at_worst(10, 6, 24) == 10_800
    assert kept_at_worst(10, 6, 1) == 2_520
    assert kept_at_worst(60, 1, 1) == 120


def test_the_fitted_line_goes_through_exact_points_and_the_report_marks_what_it_extrapolates(
        capsys: pytest.CaptureFixture) -> None:
    assert fit([(0, 1.0), (10, 21.0), (20, 41.0)]) == pytest.approx((1.0, 2.0))
    # CPU 10 ms + 10 ms per 1,000 snapshots, measured at each step's middle; the first step is warm-up (99 ms).
    rows = [(n, n * 1000, 99.0 if n == 500 else 10 + (n - 250) / 100, 0.0)
            for n in (500, 1000, 1500, 2000, 2500, 3000)]
    report(rows, 500, 10, 6)
    out = capsys.readouterr().out
    assert "10.0 ms + 10.0 ms per 1,000 snapshots kept; 1,000 bytes" in out
    assert re.search(r"hourly, expire_snapshots +2,520 +2\.5 MB +35\.2\n", out), "within the measured 3,000"
    assert re.search(r"daily, maintain_lake alone \(baseline\) +10,800 +10\.8 MB +118\.0 \(extrapolated\)", out)
    assert "0.30 x the CPU per commit and 0.23 x the metadata" in out
