"""The Snowflake warehouse on the real pipeline's data: the loader over HTTP with the real connector, crash and
re-run, exact values, the analyst queries, and the loader/analyst role separation enforced by PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from contracts.schema import TYPE_MAP
from loanrisk.settings import REPO_ROOT, Settings
from tests.stack.conftest import RiskRun
from warehouse.connection import connect
from warehouse.ddl import TABLES, WarehouseTable, grants, q, table
from warehouse.loader import FAULT_ENV, loaded_snapshot, sync

pytestmark = pytest.mark.stack


def _snowflake_keys(settings: Settings, t: WarehouseTable) -> list[tuple]:
    with connect(settings) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT {', '.join(q(k) for k in t.key)} FROM {q(t.name)}")
        return [tuple(str(v) for v in r) for r in cur.fetchall()]


def _compare_with_lake(risk_run: RiskRun, t: WarehouseTable) -> int:
    """Snowflake's rows of ``t`` against the Iceberg snapshot the loader recorded: same count, same keys."""
    from loanrisk.lake import catalog
    settings = risk_run.settings
    with connect(settings) as conn:
        snap = loaded_snapshot(conn.cursor(), t)
    lake_table = catalog(settings).load_table(f"{settings.catalog.namespace}.{t.lake_table}")
    assert snap is not None and lake_table.metadata.snapshot_by_id(snap) is not None, t.name
    frame = lake_table.scan(snapshot_id=snap, selected_fields=t.key).to_pandas()
    lake_keys = sorted(tuple(str(v) for v in r) for r in frame[list(t.key)].itertuples(index=False))
    got = sorted(_snowflake_keys(settings, t))
    assert len(got) == len(lake_keys), f"{t.name}: {len(got)} rows in Snowflake, {len(lake_keys)} in Iceberg"
    assert got == lake_keys, t.name
    return len(got)


def _riskctl_sync(table_name: str, batch_rows: int | None, fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    size = ["--batch-rows", str(batch_rows)] if batch_rows else []
    return subprocess.run([sys.executable, "-m", "riskctl.main", "warehouse", "sync", "--table", table_name, *size],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(("name", "fault"), [("TRANSACTIONS", "after_commit:2"), ("REPAYMENTS", "before_commit:2")],
                         ids=["killed_between_batches", "killed_between_merge_and_commit"])
def test_a_killed_loader_run_again_leaves_no_duplicates_and_no_gaps(risk_run: RiskRun, name: str, fault: str) -> None:
    t = table(name)
    batch_rows = 200
    killed = _riskctl_sync(name, batch_rows, fault)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert f"{name}: batch 1 merged" in killed.stdout
    partial = _snowflake_keys(risk_run.settings, t)
    assert len(set(partial)) == len(partial) and len(partial) >= batch_rows
    # Run again as an operator would, with the default batch size: a MERGE by key must not depend on where the
    # killed run's batches ended (and the whole table in 200-row MERGEs would take minutes).
    again = _riskctl_sync(name, None, None)
    assert again.returncode == 0, again.stdout + again.stderr
    print(f"{name}: {len(partial)} rows after the kill, {_compare_with_lake(risk_run, t)} after the re-run")


def test_after_sync_every_table_has_the_lakes_row_count_and_keys(risk_run: RiskRun) -> None:
    report = sync(risk_run.settings, progress=print)
    counts = {t.name: _compare_with_lake(risk_run, t) for t in TABLES}
    print(report.summary(), counts)
    for name in ("LOAN_APPLICATIONS", "TRANSACTIONS", "REPAYMENTS", "CUSTOMER_BEHAVIOUR_WINDOWS", "RISK_SCORES",
                 "RISK_BY_WINDOW", "LOAN_OUTCOMES"):
        assert counts[name] > 0, f"the pipeline left {name} empty"
    again = sync(risk_run.settings)
    assert all(r.mode in ("up-to-date", "incremental") for r in again.tables)
    assert {t.name: _compare_with_lake(risk_run, t) for t in TABLES}["RISK_SCORES"] >= counts["RISK_SCORES"]


def test_lake_schemas_match_the_snowflake_ddl(risk_run: RiskRun) -> None:
    from loanrisk.lake import catalog
    lake = catalog(risk_run.settings)
    snowflake_of_iceberg = {row[1]: row[2] for row in TYPE_MAP.values()}
    for t in TABLES:
        live = {f.name: str(f.field_type) for f in lake.load_table(f"risk.{t.lake_table}").schema().fields}
        ddl = {c.name: c for c in t.columns}
        assert set(live) == set(ddl), t.name
        for name, iceberg_type in live.items():
            assert ddl[name].snowflake_type == snowflake_of_iceberg[iceberg_type], (t.name, name)


def test_timestamps_decimals_and_nulls_round_trip_exactly(risk_run: RiskRun) -> None:
    sync(risk_run.settings)
    for name in ("LOAN_APPLICATIONS", "RISK_SCORES"):
        t = table(name)
        with connect(risk_run.settings) as conn:
            cur = conn.cursor()
            snap = loaded_snapshot(cur, t)
            cur.execute(f"SELECT {', '.join(q(c.name) for c in t.columns)} FROM {q(t.name)}")
            got = sorted(cur.fetchall(), key=lambda r: tuple(str(v) for v in r))
        from loanrisk.lake import catalog
        rows = catalog(risk_run.settings).load_table(f"risk.{t.lake_table}").scan(snapshot_id=snap).to_arrow()
        want = sorted((tuple(r.values()) for r in rows.to_pylist()), key=lambda r: tuple(str(v) for v in r))
        assert got == want, name
        if name == "LOAN_APPLICATIONS":  # nullable contract fields must come back NULL, not a default
            nullable = [i for i, c in enumerate(t.columns) if c.name in ("email", "collateral_value_minor")]
            assert any(r[i] is None for r in got for i in nullable)


def test_analyst_queries_return_plausible_numbers(risk_run: RiskRun) -> None:
    from warehouse.queries import run_query
    sync(risk_run.settings)
    names, rows = run_query(risk_run.settings, "portfolio_risk_by_segment")
    seg = [dict(zip(names, r)) for r in rows]
    assert seg and sum(r["LOANS"] for r in seg) > 0
    for r in seg:
        assert 0 <= r["MEAN_PD"] <= r["MAX_PD"] <= 1 and 0 <= r["HIGH_RISK_SHARE"] <= 1
        assert r["EXPOSURE_USD"] > 0 and 0 <= r["EXPECTED_LOSS_USD"] <= r["EXPOSURE_USD"]
    names, rows = run_query(risk_run.settings, "vintage_default_curves")
    curve = [dict(zip(names, r)) for r in rows]
    assert curve
    by_vintage: dict = {}
    for r in curve:
        assert 0 <= r["CUMULATIVE_DEFAULT_RATE"] <= 1 and r["LOANS"] > 0
        by_vintage.setdefault(r["VINTAGE"], []).append((r["MONTHS_ON_BOOK"], r["CUMULATIVE_DEFAULT_RATE"]))
    for points in by_vintage.values():
        rates = [rate for _, rate in sorted(points)]
        assert rates == sorted(rates), "a vintage curve decreases"
    names, rows = run_query(risk_run.settings, "model_performance_by_version")
    perf = [dict(zip(names, r)) for r in rows]
    assert perf and all(r["LOANS"] > 0 and 0 <= r["MEAN_PD"] <= 1 and 0 <= r["DEFAULT_RATE"] <= 1
                        and 0 <= r["BRIER"] <= 1 for r in perf)
    assert all(r["ROC_AUC"] is None or 0 <= r["ROC_AUC"] <= 1 for r in perf)
    print(seg[:3], curve[-3:], perf)


def _postgres_grants(settings: Settings, roles: dict[str, str], schema: str, db: str) -> list[str]:
    """The warehouse grants (warehouse.ddl.grants) in PostgreSQL terms, for roles renamed by ``roles``."""
    out = []
    for g in grants(settings):
        role = roles[g.role]
        privs = ", ".join("CREATE" if p == "CREATE TABLE" else p for p in g.privileges)
        if g.kind == "database":
            out.append(f"GRANT CONNECT ON DATABASE {db} TO {role}")
        elif g.kind == "schema":
            out.append(f"GRANT {privs} ON SCHEMA {schema} TO {role}")
        elif g.kind == "all_tables":
            out.append(f"GRANT {privs} ON ALL TABLES IN SCHEMA {schema} TO {role}")
        elif g.kind == "future_tables":
            out.append(f"ALTER DEFAULT PRIVILEGES FOR ROLE {roles[settings.snowflake.role]} IN SCHEMA {schema} "
                       f"GRANT {privs} ON TABLES TO {role}")
    return out


def test_analyst_role_cannot_write_and_loader_role_can_in_postgresql(stack_settings: Settings) -> None:
    import psycopg

    from stack.services import all_services
    pg_service = next(s for s in all_services(stack_settings) if s.name == "postgres")
    sf = stack_settings.snowflake
    roles = {sf.role: "wh_loader_check", sf.analyst_role: "wh_analyst_check"}
    schema, db = "warehouse_roles_check", stack_settings.postgres.serving_db
    pg_types = {row[2]: row[3] for row in TYPE_MAP.values()}
    with pg_service._connect(db) as conn:
        try:
            for r in roles.values():
                conn.execute(f"CREATE ROLE {r} NOLOGIN")
            conn.execute(f"CREATE SCHEMA {schema}")
            for stmt in _postgres_grants(stack_settings, roles, schema, db):
                conn.execute(stmt)
            conn.execute(f"SET ROLE {roles[sf.role]}")
            for t in TABLES:  # created by the loader, as in Snowflake; the future-table grants must cover them
                cols = ", ".join(f"{c.name} {pg_types[c.snowflake_type]}" for c in t.columns)
                conn.execute(f"CREATE TABLE {schema}.{t.name} ({cols})")
                conn.execute(f"INSERT INTO {schema}.{t.name} ({t.key[0]}) VALUES (NULL)")
            conn.execute("RESET ROLE")
            conn.execute(f"SET ROLE {roles[sf.analyst_role]}")
            for t in TABLES:
                assert conn.execute(f"SELECT COUNT(*) FROM {schema}.{t.name}").fetchone() == (1,)
                for stmt in (f"INSERT INTO {schema}.{t.name} ({t.key[0]}) VALUES (NULL)",
                             f"UPDATE {schema}.{t.name} SET {t.key[0]} = NULL", f"DELETE FROM {schema}.{t.name}",
                             f"TRUNCATE {schema}.{t.name}", f"CREATE TABLE {schema}.analyst_own (x int)"):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        with conn.transaction():
                            conn.execute(stmt)
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            for r in roles.values():
                conn.execute(f"DROP OWNED BY {r}")
                conn.execute(f"DROP ROLE IF EXISTS {r}")
