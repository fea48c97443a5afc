"""Data-quality checks on small frames: each names the failing table, check and column."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from contracts.features import FEATURE_NAMES
from prefect_flows.quality.checks import (
    check_freshness, check_not_null, check_range, check_schema, check_unique, check_volume, summary,
)
from prefect_flows.quality.suite import commit_history, score_checks

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


def _scores(n: int = 6) -> pd.DataFrame:
    frame = pd.DataFrame({"trigger_kind": ["application"] * n, "loan_id": [f"l{i}" for i in range(n)],
                          "customer_id": [f"c{i}" for i in range(n)],
                          "trigger_time": pd.date_range("2018-01-01", periods=n, tz="UTC"),
                          "probability": np.linspace(0.01, 0.9, n), "model_version": "v0001"})
    for name in FEATURE_NAMES:
        frame[name] = 0.5
    return frame


def test_clean_scores_pass_every_check() -> None:
    results = score_checks("scores", _scores())
    assert all(r.passed for r in results), [r.line() for r in results if not r.passed]
    assert summary(results).startswith("all ")


def test_null_keys_and_out_of_range_probabilities_fail_the_named_checks() -> None:
    bad = _scores()
    bad.loc[1, "loan_id"] = None
    bad.loc[2, "probability"] = 1.7
    failed = {r.name for r in score_checks("scores", bad) if not r.passed}
    assert failed == {"scores.nulls.loan_id", "scores.range.probability"}
    text = summary(score_checks("scores", bad))
    assert "scores.nulls.loan_id" in text and "scores.range.probability" in text and "1.7" in text


def test_a_second_application_score_for_a_loan_breaks_key_uniqueness() -> None:
    frame = _scores()
    frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    result = [r for r in score_checks("scores", frame) if r.name == "scores[application].unique.loan_id"][0]
    assert not result.passed and "2 rows share a key" in result.detail


def test_schema_check_lists_missing_columns() -> None:
    r = check_schema("t", pd.DataFrame({"a": [1]}), ["a", "b", "c"])
    assert not r.passed and r.detail == "missing columns b, c"


def test_nan_is_out_of_range_but_null_is_left_to_the_null_check() -> None:
    frame = pd.DataFrame({"x": [0.1, None, float("nan")]}, dtype="object")
    frame.loc[2, "x"] = float("nan")
    assert not check_not_null("t", pd.DataFrame({"x": [1.0, None]}), "x").passed
    assert check_range("t", pd.DataFrame({"x": [0.0, None, 1.0]}), "x", 0, 1).passed
    assert not check_range("t", pd.DataFrame({"x": [0.5, -0.1]}), "x", 0, 1).passed


def test_unique_counts_every_row_of_a_repeated_key() -> None:
    r = check_unique("t", pd.DataFrame({"k": ["a", "b", "a"], "j": [1, 1, 1]}), ["k"])
    assert not r.passed and r.detail.startswith("2 rows")
    assert check_unique("t", pd.DataFrame({"k": ["a", "b", "a"], "j": [1, 1, 2]}), ["k", "j"]).passed


def test_freshness_fails_when_the_last_commit_is_too_old_or_missing() -> None:
    assert check_freshness("t", NOW - timedelta(hours=2), timedelta(hours=24), NOW).passed
    assert not check_freshness("t", NOW - timedelta(hours=30), timedelta(hours=24), NOW).passed
    assert not check_freshness("t", None, timedelta(hours=24), NOW).passed


def test_freshness_reads_the_last_append_not_a_compaction_or_an_empty_commit() -> None:
    from prefect_flows.quality.suite import metadata_checks
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    commits = commit_history([(ms(NOW - timedelta(hours=30)), "append", 1000),
                              (ms(NOW - timedelta(hours=2)), "overwrite", 1000),  # compaction of the same rows
                              (ms(NOW - timedelta(hours=1)), "append", 0)])  # Flink's empty commit
    fresh = metadata_checks("t", commits, timedelta(hours=24), 0.5, NOW)[0]
    assert not fresh.passed and "30.0 h ago" in fresh.detail


def test_volume_counts_the_rows_own_arrival_times_when_the_commit_history_is_gone() -> None:
    """Expiry keeps hours of snapshots; a raw table's ingested_at keeps the two days the comparison needs."""
    landed = pd.Series([NOW - timedelta(hours=30)] * 1000 + [NOW - timedelta(hours=3)] * 300)
    no_history = commit_history([])
    r = check_volume("raw_transactions", no_history, min_ratio=0.5, now=NOW, landed=landed)
    assert not r.passed and "300 rows appended in the last 24 h vs 1000" in r.detail
    assert check_volume("raw_transactions", no_history, min_ratio=0.25, now=NOW, landed=landed).passed
    assert "none in the 24 h before" in check_volume("raw_transactions", no_history, now=NOW).detail


def test_a_behaviour_window_table_is_fresh_for_a_window_length_after_its_last_close() -> None:
    from prefect_flows.quality.suite import metadata_checks
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    commits = commit_history([(ms(NOW - timedelta(days=10)), "append", 500)])
    window = timedelta(days=30)
    assert metadata_checks("customer_behaviour_windows", commits, timedelta(hours=24), 0.5, NOW,
                           behaviour_window=window)[0].passed
    assert not metadata_checks("scores", commits, timedelta(hours=24), 0.5, NOW, behaviour_window=window)[0].passed
    assert not metadata_checks("customer_behaviour_windows", commit_history(
        [(ms(NOW - timedelta(days=32)), "append", 500)]), timedelta(hours=24), 0.5, NOW, behaviour_window=window)[0].passed


def test_volume_compares_rows_appended_today_with_the_day_before() -> None:
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    commits = commit_history([(ms(NOW - timedelta(hours=30)), "append", 1000),
                              (ms(NOW - timedelta(hours=3)), "append", 300),
                              (ms(NOW - timedelta(hours=2)), "overwrite", 5000)])  # compaction: not new rows
    r = check_volume("t", commits, min_ratio=0.5, now=NOW)
    assert not r.passed and "300 rows" in r.detail and "1000" in r.detail
    assert check_volume("t", commits, min_ratio=0.25, now=NOW).passed
    assert check_volume("t", commits.iloc[1:], now=NOW).passed  # nothing the day before: nothing to compare


def test_a_raw_table_is_read_for_its_recent_rows_only(tmp_path) -> None:
    """data_quality's scan filter on a real (local) Iceberg table: rows that landed in the last recent_h hours."""
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, TimestamptzType

    from prefect_flows.data_quality import recent_rows
    cat = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=f"file://{tmp_path}/wh")
    cat.create_namespace("ns")
    tbl = cat.create_table("ns.raw_transactions", schema=Schema(
        NestedField(1, "n", LongType(), required=False), NestedField(2, "ingested_at", TimestamptzType(), required=False)))
    for n, hours_ago in ((1, 60), (2, 47), (3, 1)):  # one file each, as the job's checkpoints write them
        tbl.append(pa.table({"n": pa.array([n], pa.int64()),
                             "ingested_at": pa.array([NOW - timedelta(hours=hours_ago)], pa.timestamp("us", "UTC"))}))
    read = lambda f: sorted(tbl.scan(row_filter=f).to_arrow()["n"].to_pylist())  # noqa: E731
    assert read(recent_rows("raw_transactions", 48, NOW)) == [2, 3]
    assert read(recent_rows("raw_transactions", None, NOW)) == [1, 2, 3]
    assert read(recent_rows("dead_letters", 48, NOW)) == [1, 2, 3], "no time column named: the whole table"


def test_scores_are_read_by_their_triggers_time_and_windows_by_their_close_a_window_length_further_back() -> None:
    from pyiceberg.expressions import GreaterThanOrEqual

    from prefect_flows.data_quality import recent_rows
    month = timedelta(days=30)
    assert recent_rows("scores", 48, NOW, month) == GreaterThanOrEqual(
        "trigger_time", (NOW - timedelta(hours=48)).isoformat())
    assert recent_rows("customer_behaviour_windows", 48, NOW, month) == GreaterThanOrEqual(
        "behaviour_as_of", (NOW - timedelta(hours=48) - month).isoformat())
