"""Dashboards as code: structure of the generated JSON, staleness, macro expansion, alert rules, publish."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from contracts.tables import SERVING_TABLES
from grafana import macros
from grafana.build import DASHBOARD_DIR, load, render_json, stale_files
from grafana.flink_names import (SINK_OPERATORS, SINK_RULES, SOURCE_OPERATORS, SOURCE_RULES, TASK_RULES, Rule,
                                  relabel)
from grafana.publish import provisioned_datasources
from grafana.render import query_panels
from grafana.units import UNITS
from loanrisk.settings import Settings, override

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "grafana" / "provisioning"
RULES = REPO / "prometheus" / "rules" / "loan-risk.yml"
RUNBOOK = REPO / "docs" / "RUNBOOK.md"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = datetime(2026, 1, 2, tzinfo=timezone.utc)
# The operator_name and task_name labels Flink 2.1's Prometheus reporter gives the risk job's operators and tasks.
FLINK_LABELS = json.loads((Path(__file__).parent / "flink_metric_labels.json").read_text())
# Labels whose values Flink generates from the plan ("Calc_11_"): a legend must never print them.
GENERATED_LABELS = {"operator_name", "task_name"}


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return load()


def all_panels(d: dict) -> list[dict]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def datasource_uids(d: dict) -> set[str]:
    uids = set()
    for p in all_panels(d):
        for ref in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]:
            if ref:
                uids.add(ref["uid"])
    for v in d.get("templating", {}).get("list", []):
        if v.get("datasource"):
            uids.add(v["datasource"]["uid"])
    return uids


def test_committed_dashboard_json_is_what_the_code_builds() -> None:
    assert stale_files(Settings()) == [], "run `riskctl dashboards build` and commit grafana/dashboards/*.json"


def test_build_check_fails_on_stale_json(tmp_path: Path) -> None:
    for name, text in render_json(Settings()).items():
        (tmp_path / name).write_text(text)
    assert stale_files(Settings(), tmp_path) == []
    first = sorted(render_json(Settings()))[0]
    (tmp_path / first).write_text((tmp_path / first).read_text().replace('"30s"', '"1m"'))
    assert stale_files(Settings(), tmp_path) == [first]


def test_the_risk_panels_turn_red_at_the_configured_alert_threshold() -> None:
    """A job alerting at 0.3 gets dashboards that call 0.3 high risk, in colours and in queries."""
    from grafana.build import dashboards as build_dashboards
    live = build_dashboards(override(Settings(), model={"alert_threshold": 0.3}))["loan-risk-live.json"]
    red = {step["value"] for p in all_panels(live)
           for step in p.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
           if step["color"] == "red"}
    assert 0.3 in red and 0.5 not in red
    sql = " ".join(t.get("rawSql", "") for p in all_panels(live) for t in p.get("targets", []))
    assert "probability >= 0.3" in sql and "probability >= 0.5" not in sql


def test_dashboard_uids_are_unique_and_panel_ids_unique_within_each(dashboards: dict[str, dict]) -> None:
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids) == 2
    for d in dashboards.values():
        ids = [p["id"] for p in all_panels(d)]
        assert len(ids) == len(set(ids)), d["uid"]
        assert all(isinstance(i, int) and i > 0 for i in ids)


def test_every_datasource_uid_exists_in_provisioning(dashboards: dict[str, dict]) -> None:
    provisioned = {ds["uid"]: ds["type"] for ds in yaml.safe_load(
        (PROVISIONING / "datasources" / "datasources.yaml").read_text())["datasources"]}
    for d in dashboards.values():
        used = datasource_uids(d)
        assert used and used <= set(provisioned), used - set(provisioned)
        for p in all_panels(d):
            for t in p.get("targets", []):
                assert t["datasource"]["type"] == provisioned[t["datasource"]["uid"]]


def test_every_variable_used_is_defined(dashboards: dict[str, dict]) -> None:
    for d in dashboards.values():
        defined = {v["name"] for v in d["templating"]["list"]}
        used = set()
        for p in all_panels(d):
            used |= macros.used_variables(p.get("title", ""))
            for t in p.get("targets", []):
                used |= macros.used_variables(t.get("rawSql", "") + t.get("expr", ""))
        for v in d["templating"]["list"]:
            used |= macros.used_variables(v.get("query", "") if isinstance(v.get("query"), str) else "")
        assert used <= defined, used - defined
        assert used, "a dashboard without variables in its queries"


def test_dashboards_refresh_every_30s_and_have_queries(dashboards: dict[str, dict]) -> None:
    for d in dashboards.values():
        assert d["refresh"] == "30s"
        assert len(query_panels(d)) >= 10


def test_loan_risk_dashboard_has_the_filters_units_and_thresholds(dashboards: dict[str, dict]) -> None:
    d = dashboards["loan-risk-live.json"]
    assert {v["name"] for v in d["templating"]["list"]} == {"segment", "product", "region", "grade"}
    types = {p["type"] for p in query_panels(d)}
    assert {"timeseries", "histogram", "barchart", "table", "stat"} <= types
    for p in query_panels(d):
        defaults = p.get("fieldConfig", {}).get("defaults", {})
        if p["type"] != "table" and "Model version" not in p["title"]:
            assert defaults.get("unit"), p["title"]
        for t in p["targets"]:
            assert t["rawSql"].strip() and t["format"] in {"table", "time_series"}
            if t["format"] == "time_series":
                assert "$__timeGroupAlias(" in t["rawSql"] and "ORDER BY 1" in t["rawSql"]
    assert sum(bool(p.get("fieldConfig", {}).get("defaults", {}).get("thresholds")) for p in query_panels(d)) >= 6


def field_configs(panel: dict) -> list[tuple[str, dict]]:
    """("defaults", config) and (field name, properties) of each override of a panel."""
    fc = panel.get("fieldConfig", {})
    return [("defaults", fc.get("defaults", {}))] + [
        (o["matcher"]["options"], {p["id"]: p["value"] for p in o["properties"]}) for o in fc.get("overrides", [])]


def numeric_table_columns(panel: dict) -> list[str]:
    """Columns of a table panel's SELECT that hold numbers, by the serving table's declared types."""
    select = re.match(r"SELECT (.+?) FROM (\w+)", panel["targets"][0]["rawSql"])
    assert select, panel["title"]
    types = {c.name: c.type for t in SERVING_TABLES if t.name == select.group(2) for c in t.columns}
    columns = [c.strip() for c in select.group(1).split(",")]
    assert set(columns) <= set(types), (panel["title"], set(columns) - set(types))
    return [c for c in columns if types[c] in ("int", "long", "double")]


def prom_targets(dashboards: dict[str, dict]) -> list[tuple[dict, dict]]:
    return [(p, t) for d in dashboards.values() for p in query_panels(d) for t in p["targets"] if "expr" in t]


def labels_out(expr: str) -> set[str]:
    """Labels a query's result is grouped by or given with label_replace."""
    grouped = {label.strip() for by in re.findall(r"by \(([^)]*)\)", expr) for label in by.split(",")}
    return grouped | set(re.findall(r', "(\w+)", "[^"]*", "\w+", "[^"]*"\)', expr))


def relabelled(rules: tuple[Rule, ...], value: str) -> str | None:
    """The label a chain of label_replace calls (grafana.flink_names.relabel) writes for ``value``: as Prometheus
    does, each regex must match the whole value, ``$1`` is its first group, and a later match wins."""
    name = None
    for regex, replacement in rules:
        match = re.fullmatch(regex, value)
        if match:
            name = match.expand(re.sub(r"\$(\d+)", r"\\g<\1>", replacement)) or None
    return name


def unreadable(name: str | None) -> bool:
    """A name with Flink's plan ids or escaped punctuation left in it (Calc_11_, _48_:_Writer, ____)."""
    return not name or "Calc_" in name or bool(re.search(r"_[0-9]+_|:_|__", name))


def run_promtool_tests(tmp_path: Path, tests: list[dict]) -> None:
    """Run promtool's PromQL unit tests (Prometheus's own engine, no server); skip without promtool."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    path = tmp_path / "promql_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [], "tests": tests}))
    proc = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_every_panel_shows_its_numbers_in_a_unit_the_renderer_knows(dashboards: dict[str, dict]) -> None:
    for d in dashboards.values():
        for p in query_panels(d):
            configs = dict(field_configs(p))
            if p["type"] == "table":
                for column in numeric_table_columns(p):
                    assert configs.get(column, {}).get("unit") in UNITS, f"{p['title']}: column {column} has no unit"
            else:
                assert configs["defaults"].get("unit") in UNITS, f"{p['title']}: unit {configs['defaults'].get('unit')}"


def test_shares_and_probabilities_run_from_0_to_100_percent(dashboards: dict[str, dict]) -> None:
    checked = 0
    for d in dashboards.values():
        for p in query_panels(d):
            for field, config in field_configs(p):
                if config.get("unit") == "percentunit":
                    checked += 1
                    assert (config.get("min"), config.get("max")) == (0, 1), f"{p['title']} ({field})"
    assert checked >= 9


def test_no_number_is_drawn_below_zero(dashboards: dict[str, dict]) -> None:
    """Counts, rates, lags, durations, money and shares are never negative, so every axis and gauge starts at 0."""
    for d in dashboards.values():
        for p in query_panels(d):
            for field, config in field_configs(p):
                if config.get("unit") not in (None, "string"):
                    assert config.get("min") == 0, f"{p['title']} ({field}): min {config.get('min')}"


def test_legends_never_print_flink_generated_names(dashboards: dict[str, dict]) -> None:
    targets = prom_targets(dashboards)
    assert len(targets) >= 20
    for panel, target in targets:
        legend = target.get("legendFormat", "")
        placeholders = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        if panel["type"] == "timeseries":
            assert legend, f"{panel['title']}: without a legend Grafana names a series by all its labels"
        assert not placeholders & GENERATED_LABELS, f"{panel['title']}: legend {legend!r}"
        assert placeholders <= labels_out(target["expr"]), f"{panel['title']}: {placeholders} not in the result"


def test_sources_sinks_and_tasks_get_readable_names() -> None:
    operators = FLINK_LABELS["operator_name"]
    sources = {o: relabelled(SOURCE_RULES, o) for o in operators if re.fullmatch(SOURCE_OPERATORS, o)}
    sinks = {o: relabelled(SINK_RULES, o) for o in operators if re.fullmatch(SINK_OPERATORS, o)}
    tasks = {t: relabelled(TASK_RULES, t) for t in FLINK_LABELS["task_name"]}
    assert sorted(map(str, sources.values())) == ["loan_applications", "repayments", "transactions"]
    assert {"risk_by_window (PostgreSQL)", "loan_scores_latest (PostgreSQL)", "dead_letter_topic (Kafka)",
            "risk_alerts_topic (Kafka)", "lake tables (Iceberg)"} <= set(sinks.values())
    assert not [o for o in sinks if "Committer" in o or o.startswith(("Calc_", "IcebergSink"))], sinks
    assert tasks["Deduplicate_75_____PythonCalc_76______Calc_77_____IcebergStreamWriter__Calc_79_____ConstraintEnforcer"
                 "_80_____Sink:_pg_loan_scores_latest_80___Calc_81___Calc_86_____LocalWindowAggregate_87__"
                 ] == "score loans (Python UDF)"
    assert tasks["dead_letter_topic_42_:_Writer____dead_letter_topic_42_:_Committer"] == "write dead_letter_topic (Kafka)"
    assert tasks["ProcessTableFunction_12______Calc_13_____IcebergStreamWriter__Calc_23___Calc_43__"
                 ] == "de-duplicate events 12"
    bad = {raw: name for raw, name in [*sources.items(), *sinks.items(), *tasks.items()] if unreadable(name)}
    assert not bad, bad
    assert len(set(tasks.values())) == len(tasks), "two tasks share a legend name"


def test_prometheus_gives_the_names_the_rules_describe(tmp_path: Path) -> None:
    """The test's reading of the rules (relabelled) is what Prometheus's label_replace does with them."""
    cases = [("operator_name", "source", SOURCE_RULES), ("operator_name", "sink", SINK_RULES),
             ("task_name", "task", TASK_RULES)]
    tests = []
    for label, target, rules in cases:
        values = FLINK_LABELS[label]
        expected = []
        for v in values:
            name = relabelled(rules, v)
            expected.append({"labels": f'm{{{label}="{v}"' + (f', {target}="{name}"' if name else "") + "}", "value": 1})
        tests.append({"interval": "1m", "input_series": [{"series": f'm{{{label}="{v}"}}', "values": "1"} for v in values],
                      "promql_expr_test": [{"expr": relabel("m", target, label, rules), "eval_time": "0m",
                                            "exp_samples": expected}]})
    run_promtool_tests(tmp_path, tests)


def test_the_operator_panels_return_one_readable_series_per_source_sink_and_task(
        dashboards: dict[str, dict], tmp_path: Path) -> None:
    """The pipeline panels' own queries over every operator and task of the job, evaluated by Prometheus."""
    d = dashboards["pipeline-health.json"]
    op = "flink_taskmanager_job_task_operator"
    job = 'job_name="loan_risk", subtask_index="0"'
    operators, tasks = FLINK_LABELS["operator_name"], FLINK_LABELS["task_name"]
    series = [{"series": f'{op}_{metric}{{{job}, operator_name="{o}"}}', "values": "0+0x10"}
              for metric in ("numRecordsIn", "numRecordsOut", "pendingRecords") for o in operators]
    busiest = {t: 10.0 * i for i, t in enumerate(tasks)}
    series += [{"series": f'flink_taskmanager_job_task_backPressuredTimeMsPerSecond{{{job}, task_name="{t}"}}',
                "values": f"{ms}x10"} for t, ms in busiest.items()]

    def expr(title: str, ref: str = "A") -> str:
        panel = next(p for p in query_panels(d) if p["title"] == title)
        target = next(t for t in panel["targets"] if t["refId"] == ref)
        return macros.expand_promql(target["expr"], T0, T1, 60, 15, macros.variable_values(d))

    def zeros(label: str, names: set[str | None]) -> list[dict]:
        return [{"labels": f'{{{label}="{n}"}}', "value": 0} for n in sorted(map(str, names))]

    sources = {relabelled(SOURCE_RULES, o) for o in operators if re.fullmatch(SOURCE_OPERATORS, o)}
    sinks = {relabelled(SINK_RULES, o) for o in operators if re.fullmatch(SINK_OPERATORS, o)}
    top5 = sorted(busiest, key=busiest.__getitem__)[-5:]
    checks = [
        (expr("Records read per second, by Kafka source"), zeros("source", sources)),
        (expr("Records written per second, by sink"), zeros("sink", sinks)),
        (expr("Kafka consumer lag, by topic", "B"), zeros("source", sources)),
        (expr("Backpressure, by task"), [{"labels": f'{{task_name="{t}", task="{relabelled(TASK_RULES, t)}"}}',
                                          "value": busiest[t] / 1000} for t in top5]),
    ]
    run_promtool_tests(tmp_path, [{"interval": "1m", "input_series": series, "promql_expr_test": [
        {"expr": e, "eval_time": "5m", "exp_samples": samples} for e, samples in checks]}])


def test_provider_points_at_the_mounted_dashboard_folder() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yaml").read_text())["providers"][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert sorted(p.name for p in DASHBOARD_DIR.glob("*.json")) == sorted(render_json(Settings()))


def test_postgres_datasource_reads_as_the_reader_role() -> None:
    from loanrisk.settings import PostgresSettings
    pg = next(ds for ds in provisioned_datasources() if ds["type"] == "grafana-postgresql-datasource")
    assert pg["user"] == PostgresSettings().reader_user
    assert pg["jsonData"]["database"] == PostgresSettings().serving_db


def test_sql_macros_expand_like_grafana() -> None:
    sql = ("SELECT $__timeGroupAlias(window_start, $__interval), count(*) FROM t WHERE $__timeFilter(window_start) "
           "AND x > $__timeFrom() AND ('__all' IN ($product) OR product IN ($product)) GROUP BY $segment")
    out = macros.expand_sql(sql, T0, T1, {"product": "'a','b'", "segment": "grade_band"}, interval_s=300)
    assert 'floor(extract(epoch from window_start)/300)*300 AS "time"' in out
    assert "window_start BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-02T00:00:00Z'" in out
    assert "x > '2026-01-01T00:00:00Z'" in out and "product IN ('a','b')" in out and "GROUP BY grade_band" in out
    assert "$" not in out
    with pytest.raises(macros.MacroError):
        macros.expand_sql("SELECT $nope", T0, T1, {})
    with pytest.raises(macros.MacroError):
        macros.expand_sql("SELECT $__unknownMacro(x)", T0, T1, {})


def test_variable_defaults_render_all_and_selections_are_quoted(dashboards: dict[str, dict]) -> None:
    d = dashboards["loan-risk-live.json"]
    defaults = macros.variable_values(d)
    assert defaults == {"segment": "grade_band", "product": "'__all'", "region": "'__all'", "grade": "'__all'"}
    chosen = macros.variable_values(d, {"product": ["it's", "car"], "segment": "region"})
    assert chosen["product"] == "'it''s','car'" and chosen["segment"] == "region"


def test_promql_intervals_expand_from_step_and_scrape_interval() -> None:
    out = macros.expand_promql('rate(x{job_name="$job"}[$__rate_interval]) [$__range]', T0, T1, 60, 5,
                               {"job": "loan_risk"})
    assert out == 'rate(x{job_name="loan_risk"}[65s]) [1d]'
    assert macros.expand_promql("rate(x[$__rate_interval])", T0, T1, 5, 15, {}) == "rate(x[1m])"
    assert macros.auto_interval(T0, T1) == 300.0


def test_every_alert_has_a_runbook_entry_and_rules_are_valid() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert {"LoanRiskJobDown", "LoanRiskCheckpointsFailing", "LoanRiskConsumerLagGrowing",
            "LoanRiskDeadLetterRateHigh", "LoanRiskModelLoadFailures"} <= set(alerts)
    headings = set(re.findall(r"^## (\w+)$", RUNBOOK.read_text(), flags=re.M))
    assert set(alerts) <= headings, set(alerts) - headings
    for g in rules["groups"]:
        for r in g["rules"]:
            assert r["annotations"]["runbook"] == f"docs/RUNBOOK.md#{r['alert'].lower()}"
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    proc = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_consumer_group_of_the_lag_exporter_is_the_jobs() -> None:
    from loanrisk.settings import Settings
    from stack.lag_exporter import partition_lag
    sql = (REPO / "sql" / "risk" / "10_kafka_sources.sql").read_text()
    assert "'properties.group.id' = '${consumer_group}'" in sql
    assert Settings().flink.consumer_group
    assert partition_lag(committed=40, low=0, high=100) == 60
    assert partition_lag(committed=-1001, low=10, high=100) == 90  # nothing committed yet: all retained
    assert partition_lag(committed=5, low=10, high=100) == 90  # committed offset already deleted


def test_records_deleted_past_the_groups_commit_count_as_never_read_since_the_job_restarts_at_the_log_start() -> None:
    from stack.lag_exporter import unread_deleted
    sql = (REPO / "sql" / "risk" / "10_kafka_sources.sql").read_text()
    assert "'properties.auto.offset.reset' = 'earliest'" in sql  # what the job does with a deleted offset
    assert unread_deleted(committed=5, low=10) == 5
    assert unread_deleted(committed=10, low=10) == unread_deleted(committed=40, low=10) == 0
    assert unread_deleted(committed=-1001, low=10) == 0  # nothing committed yet: the job starts at the log start


class _FakeGrafana(BaseHTTPRequestHandler):
    calls: list[tuple[str, str, dict | None, str]] = []

    def _reply(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        self.calls.append((self.command, self.path, body, self.headers.get("Authorization", "")))

    def do_GET(self) -> None:
        self._record()
        if self.path.startswith("/api/datasources/uid/loanrisk-prometheus"):
            return self._reply(200, {"uid": "loanrisk-prometheus"})
        if self.path.startswith("/api/datasources/uid/"):
            return self._reply(404, {"message": "Data source not found"})
        if self.path.startswith("/api/folders"):
            return self._reply(200, [])
        return self._reply(404, {"message": "not found"})

    def do_POST(self) -> None:
        self._record()
        self._reply(200, {"status": "success", "uid": "x", "id": 1})

    def do_PUT(self) -> None:
        self._record()
        self._reply(200, {"message": "updated"})

    def log_message(self, *args: object) -> None:
        pass


def test_publish_pushes_datasources_folder_and_dashboards_with_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from grafana.publish import publish
    monkeypatch.setenv("LOANRISK_POSTGRES_READER_PASSWORD", "s3cret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGrafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _FakeGrafana.calls = []
    try:
        lines = publish(Settings(), f"http://127.0.0.1:{server.server_port}", "tok-123")
    finally:
        server.shutdown()
    calls = _FakeGrafana.calls
    assert all(auth == "Bearer tok-123" for *_, auth in calls)
    created = [body for method, path, body, _ in calls if method == "POST" and path == "/api/datasources"]
    assert [b["uid"] for b in created] == ["loanrisk-postgres"]
    assert created[0]["secureJsonData"]["password"] == "s3cret" and created[0]["user"] == "risk_reader"
    assert any(m == "PUT" and p == "/api/datasources/uid/loanrisk-prometheus" for m, p, *_ in calls)
    assert any(m == "POST" and p == "/api/folders" for m, p, *_ in calls)
    boards = [body for method, path, body, _ in calls if method == "POST" and path == "/api/dashboards/db"]
    assert sorted(b["dashboard"]["uid"] for b in boards) == sorted(d["uid"] for d in load().values())
    assert all(b["overwrite"] and b["folderUid"] == "loan-risk" for b in boards)
    assert len(lines) == 4


def test_publish_without_a_token_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from loanrisk.settings import get_settings
    from riskctl.commands.dashboards import dashboards
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(dashboards, ["publish", "--url", "http://127.0.0.1:9"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0 and "GRAFANA_TOKEN" in result.output and "Traceback" not in result.output
