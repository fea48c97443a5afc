"""The SQL-file loader shared by the jobs and the SQL client."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobs.sqlfiles import MissingParameter, load, render, split_statements
from loanrisk.settings import REPO_ROOT


def test_split_ignores_semicolons_in_strings_and_comments() -> None:
    text = "-- a; comment\nCREATE TABLE t (a STRING) WITH ('x' = 'a;b');\nINSERT INTO t SELECT ';' ; -- tail;\n"
    assert split_statements(text) == ["CREATE TABLE t (a STRING) WITH ('x' = 'a;b')", "INSERT INTO t SELECT ';'"]


def test_render_refuses_missing_parameters() -> None:
    assert render("a ${x} b", {"x": 1}) == "a 1 b"
    with pytest.raises(MissingParameter):
        render("${nope}", {})


def test_every_sql_folder_renders_with_the_settings_parameters() -> None:
    from loanrisk.settings import Settings
    from jobs.params import sql_params
    params = {**sql_params(Settings()), "smoke_topic": "t", "smoke_table": "t"}
    folders = {p.parent for p in (REPO_ROOT / "sql").rglob("*.sql")} - {REPO_ROOT / "sql" / "warehouse"}
    assert folders
    for folder in folders:
        stmts = load(folder, params)
        assert stmts, folder
        for stmt in stmts:
            assert "${" not in stmt.text, f"{folder}: unrendered parameter"


def rendered_tolerances_ms() -> dict[str, set[int]]:
    """future_tolerance_ms of every spec literal parse_event and event_time_of get in the rendered risk job."""
    from loanrisk.settings import Settings
    from jobs.params import sql_params
    found: dict[str, set[int]] = {"parse_event": set(), "event_time_of": set()}
    for stmt in load(REPO_ROOT / "sql" / "risk", sql_params(Settings())):
        for fn, literal in re.findall(r"\b(parse_event|event_time_of)\([^']*'((?:[^']|'')*)'", stmt.text):
            found[fn].add(json.loads(literal.replace("''", "'"))["future_tolerance_ms"])
    return found


@pytest.mark.parametrize("env, want_ms", [(None, 300_000), ("17", 17_000)], ids=["default", "env"])
def test_the_future_tolerance_setting_reaches_both_functions_in_the_rendered_sql(
        monkeypatch: pytest.MonkeyPatch, env: str | None, want_ms: int) -> None:
    if env is None:
        monkeypatch.delenv("LOANRISK_FLINK__FUTURE_TOLERANCE_S", raising=False)
    else:
        monkeypatch.setenv("LOANRISK_FLINK__FUTURE_TOLERANCE_S", env)
    assert rendered_tolerances_ms() == {"parse_event": {want_ms}, "event_time_of": {want_ms}}


def test_each_sql_file_opens_with_a_header_comment() -> None:
    for path in (REPO_ROOT / "sql").rglob("*.sql"):
        assert path.read_text().lstrip().startswith("--"), f"{path} has no header saying what and why"


def test_jvm_pins_parse_and_name_one_version_each() -> None:
    from stack.jvm import load_pins
    version, groups = load_pins()
    seen: dict[str, str] = {}
    for g in groups:
        for coord in g.artifacts:
            group_id, artifact, ver = coord.split(":")
            assert seen.setdefault(f"{group_id}:{artifact}", ver) == ver
    assert version.count(".") == 2 and Path(REPO_ROOT / "requirements" / "flink.lock").read_text().count(
        f"apache-flink=={version}") == 1


def test_insert_targets_and_the_only_into_filter_over_the_risk_job() -> None:
    """`run_sql --only-into` keeps the INSERTs into matching tables: the bench's floor keeps the raw lake only."""
    from jobs.sqlfiles import Statement
    from loanrisk.settings import Settings
    from jobs.params import sql_params
    assert Statement("f", "INSERT INTO lake.`risk`.`scores` SELECT 1").insert_target == "scores"
    assert Statement("f", "insert into pg_loan_scores_latest\nSELECT 1").insert_target == "pg_loan_scores_latest"
    assert Statement("f", "CREATE TABLE scores (a INT)").insert_target is None
    stmts = load(REPO_ROOT / "sql" / "risk", sql_params(Settings()))
    every = [s.insert_target for s in stmts if s.inserts_into(())]
    assert len(every) == sum(s.is_insert for s in stmts) and "scores" in every
    floor = [s.insert_target for s in stmts if s.inserts_into(("raw_*", "dead_letter*"))]
    assert sorted(floor) == ["dead_letter_topic", "dead_letters", "raw_loan_applications", "raw_repayments",
                             "raw_transactions"]


def test_a_quote_in_a_secret_stays_inside_its_literal() -> None:
    """A password or key with a quote (and what looks like a comment or a statement end) is one value."""
    from pydantic import SecretStr

    from jobs.params import sql_params
    from loanrisk.settings import Settings, override
    s = override(Settings(), postgres={"password": SecretStr("it's;a -- secret")},
                 s3={"secret_access_key": SecretStr("o'k")})
    (catalog,) = load(REPO_ROOT / "sql" / "catalog", sql_params(s))
    assert "'jdbc.password' = 'it''s;a -- secret'" in catalog.text
    assert "'s3.secret-access-key' = 'o''k'" in catalog.text
    serving = [st for st in load(REPO_ROOT / "sql" / "risk", sql_params(s)) if "serving_jdbc" in st.text.split("(")[0]]
    assert "'password' = 'it''s;a -- secret'" in serving[0].text


# The risk job's INSERTs in statement-set order. The order numbers the compiled plan's nodes, which name
# the operators' state in checkpoints: a change here is a state migration (docs/RUNBOOK.md, "Changing the
# job's SQL"), so it is pinned and has to be edited on purpose.
RISK_JOB_INSERT_ORDER = (
    "raw_loan_applications", "raw_transactions", "raw_repayments", "pg_repeated_events", "dead_letters",
    "dead_letter_topic", "customer_behaviour_windows", "pg_customer_behaviour_windows",
    "pg_loan_applications_active", "scores", "pg_loan_scores_latest", "risk_alerts_topic", "risk_by_window",
    "pg_risk_by_window", "pg_repayments_by_window", "loan_outcomes", "pg_loan_outcomes",
)


def test_each_insert_of_the_risk_job_sits_in_the_file_of_the_view_it_writes_and_after_its_table() -> None:
    from jobs.params import sql_params
    from loanrisk.settings import Settings
    stmts = load(REPO_ROOT / "sql" / "risk", sql_params(Settings()))
    created = re.compile(r"^CREATE\s+(?:TEMPORARY\s+)?(?:VIEW|TABLE)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\S+)", re.I)
    declared_in: dict[str, str] = {}
    inserts: list[str] = []
    for stmt in stmts:
        if m := created.match(stmt.text):
            declared_in[m.group(1).rsplit(".", 1)[-1]] = stmt.file
        if not stmt.is_insert:
            continue
        target = stmt.insert_target
        assert target in declared_in, f"{stmt.file}: INSERT INTO {target} before its table is declared"
        source = re.findall(r"\bFROM\s+(\w+)\s*$", stmt.text, flags=re.I)
        assert source and declared_in.get(source[0]) == stmt.file, \
            f"{stmt.file}: INSERT INTO {target} reads {source}, a view not declared in this file"
        inserts.append(target)
    assert tuple(inserts) == RISK_JOB_INSERT_ORDER
