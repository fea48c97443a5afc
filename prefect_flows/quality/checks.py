"""Data-quality checks: each takes a DataFrame (or snapshot history) and returns one CheckResult.

Names read ``<table>.<check>[.<column>]`` (e.g. ``scores.range.probability``) so a failed run's
summary says exactly which check failed on which table and column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        """One line for logs and the failure summary."""
        return f"{'ok  ' if self.passed else 'FAIL'} {self.name}: {self.detail}"


def _examples(values: Iterable[object], n: int = 3) -> str:
    """A few offending values for the detail text."""
    shown = [repr(v) for v in list(values)[:n]]
    return ", ".join(shown)


def check_schema(table: str, frame: pd.DataFrame, expected: Sequence[str]) -> CheckResult:
    """Every expected column is present."""
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        return CheckResult(f"{table}.schema", False, f"missing columns {', '.join(missing)}")
    return CheckResult(f"{table}.schema", True, f"{len(expected)} expected columns present")


def check_not_null(table: str, frame: pd.DataFrame, column: str) -> CheckResult:
    """``column`` has no nulls."""
    name = f"{table}.nulls.{column}"
    if column not in frame.columns:
        return CheckResult(name, False, "column missing")
    nulls = int(frame[column].isna().sum())
    if nulls:
        return CheckResult(name, False, f"{nulls} of {len(frame)} rows are null")
    return CheckResult(name, True, f"no nulls in {len(frame)} rows")


def check_range(table: str, frame: pd.DataFrame, column: str, minimum: float | None = None,
                maximum: float | None = None) -> CheckResult:
    """Non-null values of ``column`` lie in [minimum, maximum] and are not NaN."""
    name = f"{table}.range.{column}"
    if column not in frame.columns:
        return CheckResult(name, False, "column missing")
    v = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    present = frame[column].notna()
    bad = present & v.isna()  # NaN or non-numeric where a value is present
    if minimum is not None:
        bad |= v < minimum
    if maximum is not None:
        bad |= v > maximum
    bounds = f"[{'-inf' if minimum is None else f'{minimum:g}'}, {'inf' if maximum is None else f'{maximum:g}'}]"
    n = int(bad.sum())
    if n:
        return CheckResult(name, False, f"{n} of {len(frame)} values outside {bounds}, e.g. "
                                        f"{_examples(frame.loc[bad, column])}")
    return CheckResult(name, True, f"all values in {bounds}")


def check_choices(table: str, frame: pd.DataFrame, column: str, allowed: Sequence[str]) -> CheckResult:
    """Non-null values of ``column`` are among ``allowed``."""
    name = f"{table}.choices.{column}"
    if column not in frame.columns:
        return CheckResult(name, False, "column missing")
    col = frame[column]
    bad = col.notna() & ~col.isin(list(allowed))
    n = int(bad.sum())
    if n:
        return CheckResult(name, False, f"{n} values not in {sorted(allowed)}, e.g. {_examples(col[bad].unique())}")
    return CheckResult(name, True, f"all values in {len(allowed)} allowed")


def check_unique(table: str, frame: pd.DataFrame, key: Sequence[str]) -> CheckResult:
    """No two rows share ``key`` (rows with a null key part count as violations too)."""
    name = f"{table}.unique.{'+'.join(key)}"
    missing = [c for c in key if c not in frame.columns]
    if missing:
        return CheckResult(name, False, f"key columns missing: {', '.join(missing)}")
    dup = frame.duplicated(list(key), keep=False)
    n = int(dup.sum())
    if n:
        return CheckResult(name, False, f"{n} rows share a key, e.g. "
                                        f"{_examples(frame.loc[dup, list(key)].drop_duplicates().itertuples(index=False))}")
    return CheckResult(name, True, f"{len(frame)} rows, keys unique")


def check_freshness(table: str, last_commit: datetime | None, max_age: timedelta,
                    now: datetime | None = None) -> CheckResult:
    """The table's latest commit is at most ``max_age`` old."""
    name = f"{table}.freshness"
    now = now or datetime.now(timezone.utc)
    if last_commit is None:
        return CheckResult(name, False, "no commit yet (empty table)")
    age = now - last_commit
    hours = age.total_seconds() / 3600
    if age > max_age:
        return CheckResult(name, False, f"last commit {hours:.1f} h ago, more than {max_age.total_seconds() / 3600:g} h")
    return CheckResult(name, True, f"last commit {hours:.2f} h ago")


def appended_rows(commits: pd.DataFrame, start: datetime, end: datetime) -> int:
    """Rows appended by commits in [start, end) (``commits``: suite.commit_history's committed_at, added_records and
    adds_rows)."""
    if commits.empty:
        return 0
    at = pd.to_datetime(commits["committed_at"], utc=True)
    mask = (at >= start) & (at < end) & commits["adds_rows"]
    return int(commits.loc[mask, "added_records"].sum())


def landed_rows(landed: pd.Series, start: datetime, end: datetime) -> int:
    """Rows whose arrival time (``landed``, UTC timestamps, e.g. a raw event's ``ingested_at``) is in [start, end)."""
    return int(((landed >= start) & (landed < end)).sum())


def check_volume(table: str, commits: pd.DataFrame, min_ratio: float = 0.5, now: datetime | None = None,
                 window: timedelta = timedelta(days=1), landed: pd.Series | None = None) -> CheckResult:
    """Rows appended in the last ``window`` are at least ``min_ratio`` of those appended in the window before:
    counted from the rows' own arrival times when ``landed`` is given, else from the commit history (which
    holds only the snapshots expiry has kept)."""
    name = f"{table}.volume"
    now = now or datetime.now(timezone.utc)
    span = f"{window.total_seconds() / 3600:g} h"
    if landed is not None:
        landed = pd.to_datetime(landed, utc=True)  # once, for both windows

    def count(start: datetime, end: datetime) -> int:
        return landed_rows(landed, start, end) if landed is not None else appended_rows(commits, start, end)

    today, before = count(now - window, now), count(now - 2 * window, now - window)
    if before == 0:
        return CheckResult(name, True, f"{today} rows appended in the last {span}; none in the {span} before "
                                       "to compare with")
    ratio = today / before
    detail = f"{today} rows appended in the last {span} vs {before} in the {span} before (ratio {ratio:.2f})"
    if ratio < min_ratio:
        return CheckResult(name, False, f"{detail}, below {min_ratio:g}")
    return CheckResult(name, True, detail)


def summary(results: Sequence[CheckResult]) -> str:
    """A readable summary naming every failed check, or 'all N checks passed'."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return f"all {len(results)} data-quality checks passed"
    return (f"{len(failed)} of {len(results)} data-quality checks failed: "
            + "; ".join(f"{r.name} ({r.detail})" for r in failed))
