"""Prefect orchestration on a real Prefect server: the 6-hourly retrain deployment, data quality, task retries."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Producer

from ingestion.generator import GeneratorConfig, generate
from loanrisk.settings import REPO_ROOT, Settings
from tests.stack.conftest import RiskRun, new_applications_score_with

pytestmark = pytest.mark.stack
RETRIES = 2
# Prefect's database vacuum looks this often here (hourly by default), so a run past its retention goes in seconds.
VACUUM_S = 5.0


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def prefect(risk_run: RiskRun) -> Iterator[Settings]:
    """A Prefect server (the stack service, on the session's port) and a `serve` process of every deployment."""
    from loanrisk.settings import override
    from prefect_flows.client import configure, prefect_env
    from stack.services.prefect import PrefectServer

    settings = override(risk_run.settings, prefect={"vacuum_interval_s": VACUUM_S})
    server = PrefectServer(settings)
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED",
                                            "PREFECT_LOGGING_TO_API_ENABLED")}
    server.start(timeout_s=240)
    env = {**os.environ, **prefect_env(settings),
           "LOANRISK_PREFECT__TASK_RETRIES": str(RETRIES), "LOANRISK_PREFECT__RETRY_DELAY_S": "1",
           # The Plaid pull of the retry test goes to a port where nothing listens.
           "PLAID_CLIENT_ID": "test-client", "PLAID_SECRET": "test-secret", "PLAID_ACCESS_TOKEN": "test-token",
           "PLAID_BASE_URL": f"http://127.0.0.1:{_free_port()}"}
    log = open(settings.state_dir / "logs" / "flows-serve.log", "ab")
    serve = subprocess.Popen([sys.executable, "-m", "prefect_flows.deployments"], cwd=REPO_ROOT, env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        configure(settings)
        _wait_for_deployments()
        yield settings
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(10)
        log.close()
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _wait_for_deployments(timeout_s: float = 240) -> None:
    from prefect.client.orchestration import get_client

    from prefect_flows.deployments import DEPLOYMENTS
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            names = {d.name for d in client.read_deployments()}
        if {d.name for d in DEPLOYMENTS} <= names:
            return
        time.sleep(3)
    raise AssertionError("the serve process did not register every deployment")


def _run(name: str, parameters: dict[str, Any], timeout_s: int = 1200) -> Any:
    from prefect.deployments import run_deployment
    run = run_deployment(name, parameters=parameters, timeout=timeout_s)
    print(f"{name}: {run.state.name if run.state else None}: {run.state.message if run.state else ''}")
    return run


def _bad_champion(settings: Settings) -> str:
    """A deliberately poor champion (trained on flipped labels), so a sensible challenger must beat it."""
    from models.pipeline import train_candidate
    from models.registry import Registry
    from models.synthetic import generated_training_set
    ts = generated_training_set(800, seed=11)
    cand = train_candidate(dataclasses.replace(ts, label=(1 - ts.label).astype(np.int8)), ["logistic_regression"], 1,
                           n_repeats=1)
    reg = Registry.from_settings(settings.model.registry(settings.s3))
    version = cand.register(reg)
    reg.promote(version, force=True)
    return version


def _more_mature_loans(settings: Settings, timeout_s: float = 420) -> None:
    """Add a later cohort of loans to the lake (the session's 120 loans hold too few defaults to train on).

    It starts after the session stream's last event (so nothing is late) and spans two months, so the
    training set has a held-out latest period; waits until the lake has enough mature labels.
    """
    from loanrisk.lake import catalog
    from models.dataset import from_iceberg
    from models.errors import DatasetError
    cfg = GeneratorConfig(seed=99, customers=400, start="2019-06-01T00:00:00Z", applications_per_day=10.0,
                          history_months=0, spend_txn_per_month=0.5)
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True, "linger.ms": 20})
    for m in generate(cfg):
        producer.produce(m.topic, key=m.key, value=m.value_bytes)
    assert producer.flush(60) == 0
    deadline = time.monotonic() + timeout_s
    n = positives = 0
    while time.monotonic() < deadline:
        try:
            ts = from_iceberg(catalog(settings), settings.catalog.namespace)
            n, positives = ts.n, ts.positives
        except DatasetError:
            pass
        if n >= 450 and positives >= 15:
            break
        time.sleep(10)
    print(f"lake training set: {n} loans with mature labels, {positives} defaults")


def test_retrain_deployment_is_scheduled_every_six_hours_utc(prefect: Settings) -> None:
    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("retrain/retrain")
    crons = [(s.schedule.cron, s.schedule.timezone) for s in dep.schedules if getattr(s.schedule, "cron", None)]
    assert crons == [("0 */6 * * *", "UTC")]


def test_retrain_run_completes_registers_a_version_and_the_job_scores_with_the_new_champion(
        prefect: Settings, risk_run: RiskRun) -> None:
    from models.registry import Registry
    s = prefect
    reg = Registry.from_settings(s.model.registry(s.s3))
    _more_mature_loans(s)
    old_champion = _bad_champion(s)
    before = reg.versions()
    run = _run("retrain/retrain", {"source": "iceberg", "families": ["logistic_regression", "random_forest"],
                                   "budget": 2})
    assert run.state.is_completed(), run.state.message
    after = reg.versions()
    assert len(after) == len(before) + 1
    new_version = after[-1]
    meta = reg.metadata(new_version)
    assert meta["training_data"]["source"] == "iceberg", "the flow did not train on the lake"
    print(f"trained on {meta['training_data']}")
    assert reg.champion()["version"] == new_version, f"{new_version} did not beat {old_champion}"
    new_applications_score_with(risk_run, new_version, seed=4242, customers=20, timeout_s=240)


@contextmanager
def _table_of_its_own(settings: Settings, ns: str, schema: Any, spec: Any = None) -> Iterator[Any]:
    """Table ``t`` in namespace ``ns`` of the session's catalog (on its object store), dropped afterwards."""
    from loanrisk.lake import catalog
    cat = catalog(settings)
    cat.create_namespace_if_not_exists(ns)
    table = cat.create_table(f"{ns}.t", schema=schema, **({"partition_spec": spec} if spec is not None else {}))
    try:
        yield table
    finally:
        cat.drop_table(f"{ns}.t")
        cat.drop_namespace(ns)


def _schedules(deployment: str) -> list[tuple[str, str]]:
    """(cron, time zone) of each schedule of ``deployment`` on the Prefect server."""
    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(deployment)
    return [(sch.schedule.cron, sch.schedule.timezone) for sch in dep.schedules]


def test_the_hourly_expiry_deployment_keeps_a_tables_current_snapshot_and_every_row(prefect: Settings) -> None:
    """expire_snapshots, run as its deployment on the session's catalog and object store, over a table of its own
    with five snapshots: the four older ones go (safety age 0), the current one and every row stay; it is on its
    hourly schedule."""
    import pyarrow as pa
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    ns = "expiry_test"
    with _table_of_its_own(prefect, ns, Schema(NestedField(1, "id", LongType(), required=False))) as table:
        for i in range(5):
            table.append(pa.table({"id": pa.array([i], pa.int64())}))
        assert len(table.refresh().snapshots()) == 5
        run = _run("expire_snapshots/expire_snapshots", {"tables": ["t"], "namespace": ns, "min_age_h": 0},
                   timeout_s=600)
        assert run.state.is_completed(), run.state.message
        after = table.refresh()
        assert [snap.snapshot_id for snap in after.snapshots()] == [after.current_snapshot().snapshot_id]
        assert sorted(after.scan().to_arrow()["id"].to_pylist()) == [0, 1, 2, 3, 4]
    assert _schedules("expire_snapshots/expire_snapshots") == [("30 * * * *", "UTC")]


def test_the_hourly_compaction_deployment_merges_a_partitions_small_files_and_keeps_every_row(prefect: Settings) -> None:
    """compact_lake, run as its deployment on the session's catalog and object store, over a day-partitioned table of
    its own: ten small files of one day become one (safety age 0), every row stays; it is on its hourly schedule."""
    from datetime import date

    import pyarrow as pa
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import DateType, LongType, NestedField

    from loanrisk.lake import is_compaction
    ns = "compaction_test"
    schema = Schema(NestedField(1, "id", LongType(), required=False), NestedField(2, "d", DateType(), required=False))
    by_day = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="d"))
    with _table_of_its_own(prefect, ns, schema, by_day) as table:
        for i in range(10):
            table.append(pa.table({"id": pa.array([i], pa.int64()), "d": [date(2026, 1, 1)]}))
        assert table.refresh().inspect.files().num_rows == 10
        run = _run("compact_lake/compact_lake", {"tables": ["t"], "namespace": ns, "min_age_min": 0}, timeout_s=600)
        assert run.state.is_completed(), run.state.message
        after = table.refresh()
        assert after.inspect.files().num_rows == 1 and is_compaction(after.current_snapshot())
        assert sorted(after.scan().to_arrow()["id"].to_pylist()) == list(range(10))
    assert _schedules("compact_lake/compact_lake") == [("15 * * * *", "UTC")]


def test_prefects_own_vacuum_deletes_runs_ended_past_the_retention_with_their_task_runs_and_logs(
        prefect: Settings) -> None:
    """Live time compressed: of two real runs of a deployment, one has its end moved back past
    prefect.run_retention_days in the server's database (Prefect stamps a run's end with its own clock, and the API
    takes no other). The server's own vacuum, looking every VACUUM_S seconds, deletes that run with its task runs
    and logs, and keeps the other."""
    import sqlite3
    from contextlib import closing
    from datetime import datetime, timedelta, timezone

    import pyarrow as pa
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.exceptions import ObjectNotFound
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    from stack.services.prefect import PrefectServer
    from tests.stack.reliability_helpers import wait_until

    def kept(run_id: Any) -> tuple[bool, int, int]:
        """Whether the server still has the run, and how many task runs and logs it has of it."""
        with get_client(sync_client=True) as client:
            try:
                client.read_flow_run(run_id)
                there = True
            except ObjectNotFound:
                there = False
            ids = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            return (there, len(client.read_task_runs(flow_run_filter=ids)),
                    len(client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))))

    ns = "vacuum_test"
    with _table_of_its_own(prefect, ns, Schema(NestedField(1, "id", LongType(), required=False))) as table:
        table.append(pa.table({"id": pa.array([1], pa.int64())}))
        runs = [_run("expire_snapshots/expire_snapshots", {"tables": ["t"], "namespace": ns, "min_age_h": 0},
                     timeout_s=600) for _ in range(2)]
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
    old, recent = (r.id for r in runs)
    # Logs reach the server in batches: both runs' must be there, or their deletion proves nothing.
    wait_until(lambda: all(kept(r)[2] > 0 for r in (old, recent)), 60, "both runs' logs reaching the server", every_s=1)
    before = {r: kept(r) for r in (old, recent)}
    assert all(there and tasks > 0 for there, tasks, _ in before.values()), before

    ended = datetime.now(timezone.utc) - timedelta(days=prefect.prefect.run_retention_days + 1)
    database = PrefectServer(prefect).home / "prefect.db"
    with closing(sqlite3.connect(database, timeout=30)) as db, db:
        aged = db.execute("UPDATE flow_run SET end_time = ? WHERE id = ?",
                          (ended.strftime("%Y-%m-%d %H:%M:%S.%f"), str(old))).rowcount
        rows = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("flow_run", "flow_run_state", "task_run", "task_run_state", "log", "events")}
    assert aged == 1, "the run to age was not found in the server's database"
    print(f"the server's database ({database.stat().st_size / 1e6:.1f} MB) "
          f"after this session's runs: {rows}")
    wait_until(lambda: kept(old) == (False, 0, 0), 3 * VACUUM_S + 60,
               "Prefect's vacuum deleting the run past the retention, its task runs and its logs", every_s=1)
    after = kept(recent)
    print(f"vacuum: run {old} (task runs, logs) {before[old][1:]} -> deleted; run {recent} kept: {after}")
    assert after[:2] == before[recent][:2] and after[2] >= before[recent][2], "the vacuum took a run within the retention"


def test_a_failing_task_is_retried_by_its_policy(prefect: Settings) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    run = _run("ingest_apis/ingest_apis", {"sources": ["plaid"], "max_attempts": 1}, timeout_s=600)
    assert run.state.is_failed()
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        pull = [t for t in tasks if t.name.startswith("pull-plaid")]
        assert len(pull) == 1, [t.name for t in tasks]
        states = [st.name for st in client.read_task_run_states(pull[0].id)]
    print("pull-plaid states:", states)
    assert states.count("Retrying") == RETRIES
    assert states[-1] == "Failed" and pull[0].run_count == RETRIES + 1


def test_injected_bad_rows_fail_data_quality_naming_the_checks(prefect: Settings, risk_run: RiskRun) -> None:
    from datetime import datetime, timezone

    import pyarrow as pa

    from loanrisk.lake import catalog
    s = prefect
    table = catalog(s).load_table(f"{s.catalog.namespace}.scores")
    good = table.scan(limit=2).to_arrow()
    assert good.num_rows == 2
    bad = good.set_column(good.schema.get_field_index("loan_id"), good.schema.field("loan_id"),
                          pa.array([None, "dq-bad-loan"], good.schema.field("loan_id").type))
    bad = bad.set_column(bad.schema.get_field_index("probability"), bad.schema.field("probability"),
                         pa.array([0.2, 1.7], bad.schema.field("probability").type))
    now = datetime.now(timezone.utc)  # rows that land now: the hourly run reads the scores of the last 48 h
    bad = bad.set_column(bad.schema.get_field_index("trigger_time"), bad.schema.field("trigger_time"),
                         pa.array([now, now], bad.schema.field("trigger_time").type))
    table.append(bad)
    run = _run("data_quality/data_quality", {"tables": ["scores"]}, timeout_s=600)
    assert run.state.is_failed()
    message = run.state.message or ""
    assert "scores.nulls.loan_id" in message and "scores.range.probability" in message, message
