"""Window freshness: the exporter's age of the newest closed window (wall time), and the alert rule on it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from loanrisk.settings import REPO_ROOT, Settings, override
from stack.lag_exporter import WindowClock, WindowEnds, WindowFreshnessCollector, job_windows, window_age
from stack.recovery import Submission, record_submission

RULES = REPO_ROOT / "prometheus" / "rules" / "loan-risk.yml"
DAY = 86_400.0
WINDOW_END = 1_548_979_200.0  # 2019-02-01T00:00:00Z: replayed history, far behind the wall clock


def samples(collector: WindowFreshnessCollector) -> dict[tuple[str, str], float]:
    """(metric name, table label or "") -> value of one scrape."""
    return {(s.name, s.labels.get("table", "")): s.value for family in collector.collect() for s in family.samples}


# -- the age --------------------------------------------------------------------------------------
def test_nothing_waits_when_every_score_is_in_a_closed_window() -> None:
    assert window_age(None, WINDOW_END, WINDOW_END - 1, now=1_000.0) == (0.0, None)
    assert window_age(None, None, None, now=1_000.0) == (0.0, None)
    clock = WindowClock(WINDOW_END, 10.0)
    assert window_age(clock, WINDOW_END, WINDOW_END - 1, now=1_000.0) == (0.0, None)


def test_waiting_scores_age_in_wall_time_from_the_first_scrape_that_saw_them() -> None:
    age, clock = window_age(None, WINDOW_END, WINDOW_END + 3600, now=1_000.0)
    assert age == 0.0 and clock == WindowClock(WINDOW_END, 1_000.0)
    age, clock = window_age(clock, WINDOW_END, WINDOW_END + 7200, now=1_090.0)
    assert age == 90.0 and clock == WindowClock(WINDOW_END, 1_000.0)


def test_a_closing_window_starts_the_age_again() -> None:
    clock = WindowClock(WINDOW_END, 1_000.0)
    age, clock = window_age(clock, WINDOW_END + DAY, WINDOW_END + DAY + 60, now=1_500.0)
    assert age == 0.0 and clock == WindowClock(WINDOW_END + DAY, 1_500.0)


def test_scores_before_any_window_closed_wait_too() -> None:
    """The demo's 'latest risk window: -' while scores have landed."""
    _, clock = window_age(None, None, WINDOW_END, now=1_000.0)
    assert window_age(clock, None, WINDOW_END, now=1_600.0)[0] == 600.0


# -- the collector --------------------------------------------------------------------------------
def test_the_collector_exports_age_newest_end_and_close_due_per_table(tmp_path: Path) -> None:
    settings = override(Settings(), stack={"state_dir": tmp_path})  # no job submitted: the settings' values
    reads = iter([WindowEnds(newest_score=WINDOW_END + 10, risk_end=WINDOW_END, risk_length_s=DAY,
                             behaviour_end=WINDOW_END - 20 * DAY)] * 2)
    now = iter([5_000.0, 5_700.0])
    collector = WindowFreshnessCollector(settings, read=lambda: next(reads), wall_clock=lambda: next(now))
    samples(collector)
    second = samples(collector)
    delay = settings.flink.watermark_delay_s
    assert second[("loanrisk_window_age_seconds", "risk_by_window")] == 700.0
    assert second[("loanrisk_window_age_seconds", "customer_behaviour_windows")] == 700.0
    assert second[("loanrisk_window_newest_end_seconds", "risk_by_window")] == WINDOW_END
    # The risk window's length as the job wrote it; the behaviour window's from the settings.
    assert second[("loanrisk_window_close_due_seconds", "risk_by_window")] == DAY + delay
    assert second[("loanrisk_window_close_due_seconds", "customer_behaviour_windows")] == \
        settings.flink.behaviour_window_days * DAY + delay
    assert second[("loanrisk_serving_up", "")] == 1


def _submitted(settings: Settings, name: str, sql: dict, wanted: bool = True, at: float = 1.0) -> None:
    params = settings.state_dir / "run" / f"params-{name}.json"
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(json.dumps({"sql": sql, "flink_conf": {}}))
    record_submission(settings, Submission(name, "0" * 32, "run_sql.py", [], [], str(params), submitted_at=at,
                                           wanted=wanted))


def test_close_due_follows_the_running_job_not_the_stack_settings(tmp_path: Path) -> None:
    """A job submitted with compressed time (the tests') or other windows: its close-due time is its own."""
    settings = override(Settings(), stack={"state_dir": tmp_path})
    group = settings.flink.consumer_group
    _submitted(settings, "loan-risk", {"consumer_group": group, "watermark_delay_s": 28_800, "window_minutes": 1440,
                                       "behaviour_window_days": 30}, at=100.0)
    _submitted(settings, "stopped", {"consumer_group": group, "watermark_delay_s": 1, "window_minutes": 1,
                                     "behaviour_window_days": 1}, wanted=False, at=200.0)
    _submitted(settings, "other-group", {"consumer_group": "someone-else", "watermark_delay_s": 2,
                                         "window_minutes": 2, "behaviour_window_days": 2}, at=300.0)
    assert job_windows(settings).watermark_delay_s == 28_800.0
    reads = iter([WindowEnds(newest_score=WINDOW_END + 10, risk_end=WINDOW_END, risk_length_s=None,
                             behaviour_end=WINDOW_END - 20 * DAY)])
    got = samples(WindowFreshnessCollector(settings, read=lambda: next(reads), wall_clock=lambda: 5_000.0))
    assert got[("loanrisk_window_close_due_seconds", "risk_by_window")] == DAY + 28_800.0
    assert got[("loanrisk_window_close_due_seconds", "customer_behaviour_windows")] == 30 * DAY + 28_800.0


def test_an_unreadable_serving_database_is_a_metric_not_a_failed_scrape() -> None:
    def unreachable() -> WindowEnds:
        raise OSError("connection refused")

    got = samples(WindowFreshnessCollector(Settings(), read=unreachable))
    assert got[("loanrisk_serving_up", "")] == 0 and got[("loanrisk_serving_read_errors_total", "")] == 1
    assert not any(name == "loanrisk_window_age_seconds" for name, _ in got)


# -- the alert ------------------------------------------------------------------------------------
def fired(tmp_path: Path, alert: str, series: dict[str, str], at: str) -> str:
    """promtool's report on ``alert`` at ``at`` for input ``series`` (name{labels} -> values, a sample a minute);
    empty when it does not fire. promtool is told to expect no alert; its failure report then names the alert
    that did fire."""
    spec = tmp_path / "alert_test.yml"
    spec.write_text(yaml.safe_dump({
        "rule_files": [str(RULES)], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": [{"series": k, "values": v} for k, v in series.items()],
                   "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}]}]}))
    proc = subprocess.run([shutil.which("promtool") or "promtool", "test", "rules", str(spec)],
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 or "got:" in out, out  # a broken test file is not "fired"
    return "" if proc.returncode == 0 else out


def fires_at_35m(tmp_path: Path, age_series: str, due: float) -> bool:
    """Whether LoanRiskWindowsNotClosing fires at minute 35 when risk_by_window's age follows ``age_series``."""
    out = fired(tmp_path, "LoanRiskWindowsNotClosing",
                {'loanrisk_window_age_seconds{table="risk_by_window"}': age_series,
                 'loanrisk_window_close_due_seconds{table="risk_by_window"}': f"{due}x40"}, "35m")
    return 'alertname="LoanRiskWindowsNotClosing"' in out and "risk_by_window" in out


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_the_alert_fires_once_a_window_overstays_its_length_and_delay_and_not_while_it_may_be_open(
        tmp_path: Path) -> None:
    due = 60.0 + 300.0  # one-minute windows, five minutes of watermark delay
    assert fires_at_35m(tmp_path, "0+60x40", due)  # a window that never closes: a minute older every minute
    assert not fires_at_35m(tmp_path, " ".join(["0 60 120"] * 14), due)  # steady traffic: windows keep closing
    assert not fires_at_35m(tmp_path, "0+0x40", due)  # nothing waiting


def late_drop_alerts(tmp_path: Path, drops: str) -> str:
    """promtool's report on LoanRiskLateEventsDropped at minute 30 when a window operator's late-drop counter
    follows ``drops``; empty when it does not fire."""
    series = ('flink_taskmanager_job_task_operator_numLateRecordsDropped{job_name="loan_risk", '
              'operator_name="LocalWindowAggregate", subtask_index="0"}')
    return fired(tmp_path, "LoanRiskLateEventsDropped", {series: drops}, "30m")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_late_drops_in_the_last_quarter_hour_alert_and_old_ones_do_not(tmp_path: Path) -> None:
    fired = late_drop_alerts(tmp_path, "0x20 0 0 7 7 7 7 7 7 7 7 7")  # 7 events dropped at minute 23
    assert 'alertname="LoanRiskLateEventsDropped"' in fired and "severity=\"warning\"" in fired, fired
    assert not late_drop_alerts(tmp_path, "0x30")  # nothing dropped
    assert not late_drop_alerts(tmp_path, "0 0 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4")  # at minute 2
