"""Every dashboard query on the real stack: SQL panels against the PostgreSQL the risk job filled (as the
reader role), PromQL panels against the Prometheus scraping the real Flink cluster, and values that move."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pandas as pd
import pytest
from confluent_kafka import Producer

from grafana import macros
from grafana.build import load
from grafana.panels import POSTGRES_UID, PROMETHEUS_UID
from grafana.render import data_range, query_panels, run_panel, run_sql
from loanrisk.settings import Settings

pytestmark = pytest.mark.stack


def _targets(uid: str) -> list[tuple[dict, dict]]:
    """(dashboard, panel) pairs of panels whose targets use datasource ``uid``."""
    return [(d, p) for d in load().values() for p in query_panels(d)
            if all(t["datasource"]["uid"] == uid for t in p["targets"])]


def _numeric(s: pd.Series) -> bool:
    return pd.to_numeric(s, errors="coerce").notna().any()


def _shape_problem(panel: dict, frame: pd.DataFrame) -> str | None:
    """What the panel type needs from its query result, or None when the frame has it."""
    cols = list(frame.columns)
    if frame.empty:
        return "no rows"
    kind = panel["type"]
    if kind == "timeseries":
        if "time" not in cols or not _numeric(frame["time"]):
            return f"no numeric time column in {cols}"
        if not any(_numeric(frame[c]) for c in cols if c != "time"):
            return f"no numeric value column in {cols}"
    elif kind == "stat":
        field = panel.get("options", {}).get("reduceOptions", {}).get("fields", "").strip("/^$")
        if field and field not in cols:
            return f"stat field {field} missing from {cols}"
        if not field and not _numeric(frame[cols[0]]):
            return f"stat value {cols[0]} is not numeric"
    elif kind == "barchart":
        x = panel["options"]["xField"]
        if x not in cols or not any(_numeric(frame[c]) for c in cols if c != x):
            return f"bar chart needs {x} and numeric columns, got {cols}"
    elif kind == "histogram":
        if not _numeric(frame[cols[0]]):
            return f"histogram column {cols[0]} is not numeric"
    elif kind == "table" and len(cols) < 2:
        return f"table with columns {cols}"
    return None


def test_every_sql_panel_query_returns_what_its_panel_needs_as_the_reader(risk_run) -> None:
    settings: Settings = risk_run.settings
    assert run_sql(settings, "SELECT current_user AS u")["u"][0] == settings.postgres.reader_user
    start, end = data_range(settings)
    problems, checked = [], 0
    for dashboard, panel in _targets(POSTGRES_UID):
        res = run_panel(settings, panel, macros.variable_values(dashboard), start, end)
        for sql, frame in zip(res.queries, res.frames):
            checked += 1
            problem = _shape_problem(panel, frame)
            if problem:
                problems.append(f"{panel['title']}: {problem}\n  {sql}")
    assert checked >= 12 and not problems, "\n".join(problems)


def test_variable_queries_list_values_and_a_chosen_value_filters(risk_run) -> None:
    settings: Settings = risk_run.settings
    dashboard = load()["loan-risk-live.json"]
    start, end = data_range(settings)
    chosen = {}
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            values = run_sql(settings, var["query"]).iloc[:, 0].tolist()
            assert values, var["name"]
            chosen[var["name"]] = [values[0]]
    chosen["segment"] = "product"
    count_panel = next(p for p in query_panels(dashboard) if p["title"] == "Loans scored")
    total = run_panel(settings, count_panel, macros.variable_values(dashboard), start, end).frames[0].iloc[0, 0]
    some = run_panel(settings, count_panel, macros.variable_values(dashboard, {"product": chosen["product"]}),
                     start, end).frames[0].iloc[0, 0]
    assert 0 < some <= total
    values = macros.variable_values(dashboard, chosen)
    for panel in query_panels(dashboard):
        run_panel(settings, panel, values, start, end)  # every query is valid SQL with concrete selections


def _prom_window(settings: Settings) -> tuple[datetime, datetime, float]:
    end = datetime.now(timezone.utc)
    start = end - timedelta(minutes=60)  # the whole session: scoring happened during the risk run
    return start, end, macros.auto_interval(start, end, min_interval_s=settings.prometheus.scrape_interval_s)


def test_every_promql_query_returns_series_from_the_flink_cluster(risk_run) -> None:
    settings: Settings = risk_run.settings
    pending = [(d, p) for d, p in _targets(PROMETHEUS_UID)]
    assert len(pending) >= 15
    deadline = time.monotonic() + 8 * settings.prometheus.scrape_interval_s + 30
    missing: list[str] = []
    while True:
        missing = []
        for dashboard, panel in pending:
            start, end, _ = _prom_window(settings)
            res = run_panel(settings, panel, macros.variable_values(dashboard), start, end)
            refs = {name for name, s in res.series if s.notna().any()}
            if len(res.series) < len(panel["targets"]) or not refs:
                missing.append(f"{panel['title']}: {len(res.series)} series for {res.queries}")
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(settings.prometheus.scrape_interval_s)
    assert not missing, "\n".join(missing)
    rules = httpx.get(f"{settings.prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert "LoanRiskJobDown" in {r["name"] for g in rules for r in g["rules"]}
    # No panel draws the late drops; the alert's series must exist all the same, or it could never fire.
    late = _instant(settings, 'sum(flink_taskmanager_job_task_operator_numLateRecordsDropped{job_name="loan_risk"})')
    assert late, "no window operator reports numLateRecordsDropped: LoanRiskLateEventsDropped could never fire"
    deleted = _instant(settings, "max by (topic) (loanrisk_kafka_unread_deleted)")
    assert deleted and not any(deleted.values()), f"LoanRiskUnreadRecordsDeleted has no series or fires: {deleted}"


def _dashboard_expr(title: str, settings: Settings) -> str:
    dashboard = load()["pipeline-health.json"]
    panel = next(p for p in query_panels(dashboard) if p["title"] == title)
    start, end, step = _prom_window(settings)
    return macros.expand_promql(panel["targets"][0]["expr"], start, end, step, settings.prometheus.scrape_interval_s,
                                macros.variable_values(dashboard))


def _instant(settings: Settings, expr: str) -> dict[str, float]:
    body = httpx.get(f"{settings.prometheus.url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return {str(r["metric"].get("topic", "")): float(r["value"][1]) for r in body["data"]["result"]}


def test_lag_and_dead_letter_rate_rise_under_a_burst_of_malformed_events(risk_run) -> None:
    """A burst faster than the job drains: the exporter's lag and the dashboard's dead-letter rate go up."""
    settings: Settings = risk_run.settings
    topic = settings.kafka.topics.transactions
    lag_expr = _dashboard_expr("Kafka consumer lag, by topic", settings)
    dl_expr = _dashboard_expr("Dead letters per second", settings)
    lag_before = _instant(settings, lag_expr).get(topic, 0.0)
    rate_before = sum(_instant(settings, dl_expr).values())
    producer = Producer({**settings.kafka.client_config(), "linger.ms": 50})
    sent = 0
    for burst in range(3):
        for i in range(15_000):
            producer.produce(topic, key=f"burst-{burst}-{i}".encode(), value=b'{"event_id": "burst", broken json')
            if i % 5000 == 0:
                producer.poll(0)
        sent += 15_000
        producer.flush(30)
        time.sleep(2)
    lag_max, rate_max = lag_before, rate_before
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lag_max = max(lag_max, _instant(settings, lag_expr).get(topic, 0.0))
        rate_max = max(rate_max, sum(_instant(settings, dl_expr).values()))
        if lag_max >= lag_before + 5_000 and rate_max > rate_before + 10:
            break
        time.sleep(settings.prometheus.scrape_interval_s / 2)
    print(f"burst of {sent}: lag {lag_before:.0f} -> max {lag_max:.0f}; dead letters/s {rate_before:.1f} -> "
          f"max {rate_max:.1f}")
    assert lag_max >= lag_before + 5_000
    assert rate_max > rate_before + 10


def test_render_draws_both_dashboards_to_png_from_the_real_data(risk_run, tmp_path) -> None:
    """`riskctl dashboards render` on the stack: one PNG per panel and one per dashboard (after the burst above).

    With LOANRISK_TEST_RENDER_DOCS=1 the pictures are copied to docs/img/ (how the README's images are made).
    """
    import os
    import shutil

    from PIL import Image

    from grafana.render import render
    from loanrisk.settings import REPO_ROOT
    written = render(risk_run.settings, tmp_path, prom_minutes=20, panels_too=True)
    boards = [p for p in written if p.parent == tmp_path]
    assert sorted(p.name for p in boards) == ["loan-risk-live.png", "pipeline-health.png"]
    panels = sum(len(query_panels(d)) for d in load().values())
    assert len(written) == panels + 2
    for path in written:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width >= 200 and len(img.convert("RGB").getcolors(1 << 24)) > 16, path
    if os.environ.get("LOANRISK_TEST_RENDER_DOCS"):
        for path in boards:
            shutil.copy(path, REPO_ROOT / "docs" / "img" / path.name)
