"""Foundation must-shows on the real local stack: cross-engine smoke, Snowflake round trip, lifecycle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from loanrisk.settings import REPO_ROOT, Settings
from jobs.params import write_params
from stack.flink_client import flink_run, job_exceptions, rest, wait_for_state
from stack.process import is_alive
from stack.services import all_services
from stack.services.flink import FlinkCluster
from stack.services.kafka import ensure_topics, topic_offsets

pytestmark = pytest.mark.stack
# The smoke job's rows: a short first partition, and a long one that keeps the other source subtask reading
# through several of the job's checkpoints.
SMOKE_ROWS, SHORT_PARTITION = 60_000, 50


def _catalog(settings: Settings):
    from loanrisk.lake import catalog
    return catalog(settings)


def _produce_json(settings: Settings, topic: str, rows_per_partition: list[list[dict]]) -> None:
    k = settings.kafka
    ensure_topics(k, [topic], len(rows_per_partition), k.topics.topic_config(k.max_message_bytes))
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True})
    for partition, rows in enumerate(rows_per_partition):
        for row in rows:
            producer.produce(topic, key=str(row["id"]), value=json.dumps(row), partition=partition)
            producer.poll(0)
    assert producer.flush(60) == 0


def test_flink_run_moves_kafka_json_into_iceberg_and_pyiceberg_reads_exactly_those_rows(
        stack_settings: Settings) -> None:
    """A bounded job: its source reads one short and one long partition, so one source subtask ends while the
    other still reads, and checkpoints complete in between. (With a writer per source subtask, the Iceberg
    committer lost the early writer's files: sql/smoke/30_smoke_insert.sql.)"""
    s = stack_settings
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    rows = [{"id": i, "name": f"loan-{i}", "amount": round(i * 10.25, 2),
             "event_time": f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z"}
            for i in range(SMOKE_ROWS)]
    _produce_json(s, topic, [rows[:SHORT_PARTITION], rows[SHORT_PARTITION:]])
    table = topic.replace("-", "_")
    params = write_params(s, "smoke", {"smoke_topic": topic, "smoke_table": table},
                          {"execution.checkpointing.interval": "1 s", "parallelism.default": "2"})
    job_id = flink_run(s, REPO_ROOT / "jobs" / "run_sql.py",
                       ["--sql-dir", str(REPO_ROOT / "sql" / "catalog"), "--sql-dir", str(REPO_ROOT / "sql" / "smoke"),
                        "--params", str(params), "--name", "smoke"])
    state = wait_for_state(s, job_id, {"FINISHED"}, 300)
    assert state == "FINISHED", job_exceptions(s, job_id)
    checkpoints = rest(s, f"/jobs/{job_id}/checkpoints")["counts"]["completed"]
    assert checkpoints >= 1, "no checkpoint completed while the job ran, so the early writer's files were not at risk"
    df = _catalog(s).load_table(f"smoke.{table}").scan().to_pandas()
    got = sorted(zip(df["id"], df["name"], df["amount"]))
    missing = sorted(set(range(SMOKE_ROWS)) - set(df["id"]))
    assert not missing, (f"{len(missing)} of {SMOKE_ROWS} rows missing ({sum(i < SHORT_PARTITION for i in missing)} of "
                         f"the short partition's); {checkpoints} checkpoint(s) completed")
    assert got == sorted((r["id"], r["name"], r["amount"]) for r in rows)
    print(f"smoke: {len(df)} rows Kafka -> Flink -> Iceberg -> pyiceberg, {checkpoints} checkpoint(s) during the job")


def test_snowflake_connector_round_trips_a_row_over_http(stack_settings: Settings) -> None:
    from warehouse.connection import connect
    with connect(stack_settings) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS roundtrip (id INTEGER, amount NUMBER(12,2), note VARCHAR, "
                    "booked_at TIMESTAMP_NTZ)")
        cur.execute("INSERT INTO roundtrip VALUES (%s, %s, %s, %s)",
                    (7, Decimal("1234.56"), "snowflake over http", datetime(2026, 1, 2, 3, 4, 5)))
        cur.execute("SELECT id, amount, note, booked_at FROM roundtrip WHERE id = 7")
        row = cur.fetchone()
    assert row[0] == 7 and Decimal(str(row[1])) == Decimal("1234.56") and row[2] == "snowflake over http"
    assert row[3].replace(tzinfo=None) == datetime(2026, 1, 2, 3, 4, 5)


def test_maintenance_lists_a_prefix_longer_than_a_page_with_partition_folders_each_object_once(
        stack_settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from loanrisk.objectstore import s3_client
    from prefect_flows.lake_upkeep import s3_lister_deleter
    s3 = stack_settings.s3
    client = s3_client(s3)
    root = f"listing-{uuid.uuid4().hex[:8]}/data"
    # Over one page (1000 keys), with the page boundary inside an Iceberg-style "name=value" folder.
    keys = [f"{root}/event_date=2018-08-{day:02d}/f-{i:04d}.parquet" for day in (1, 2, 3) for i in range(380)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=s3.bucket, Key=k, Body=b"x"), keys))
    lister, deleter = s3_lister_deleter(s3)
    listed = [uri for uri, _ in lister(f"s3://{s3.bucket}/{root}")]
    assert sorted(listed) == sorted(f"s3://{s3.bucket}/{k}" for k in keys)
    deleter(listed)
    assert not list(lister(f"s3://{s3.bucket}/{root}"))


def test_stack_up_with_a_taken_port_exits_nonzero_with_one_line(stack_settings: Settings, tmp_path: Path) -> None:
    import socket
    env = {**os.environ, "LOANRISK_STACK__STATE_DIR": str(tmp_path / "state")}
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        for var in [k for k in os.environ if k.startswith("LOANRISK_") and k.endswith("_PORT")]:
            env[var] = str(int(os.environ[var]) + 100)  # every port away from the session's own stack
        env["LOANRISK_KAFKA__PORT"] = str(port)
        proc = subprocess.run([sys.executable, "-m", "riskctl.main", "stack", "up"], env=env,
                              capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert str(port) in lines[0] and "kafka" in lines[0]
    assert not list((tmp_path / "state" / "run").glob("*.pid")), "nothing may start when a port is taken"


def test_up_twice_starts_nothing_twice(stack_settings: Settings) -> None:
    from stack.manager import up
    before = {svc.name: svc.pid() for svc in all_services(stack_settings)}
    messages: list[str] = []
    up(stack_settings, progress=messages.append)
    after = {svc.name: svc.pid() for svc in all_services(stack_settings)}
    assert before == after and all(before.values())
    assert all("already running" in m for m in messages)


def test_down_stops_every_pid_and_up_keeps_all_data(stack_settings: Settings) -> None:
    from stack.manager import down, up
    from warehouse.connection import connect
    s = stack_settings
    # Data in every store.
    topic = f"persist-{uuid.uuid4().hex[:8]}"
    rows = [{"id": i} for i in range(40)]
    _produce_json(s, topic, [rows[:20], rows[20:]])
    with psycopg.connect(s.postgres.dsn(s.postgres.serving_db), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS persist_check (v TEXT)")
        conn.execute("INSERT INTO persist_check VALUES (%s)", (topic,))
    with connect(s) as conn:
        conn.cursor().execute("CREATE TABLE IF NOT EXISTS persist_check (v VARCHAR)")
        conn.cursor().execute("INSERT INTO persist_check VALUES (%s)", (topic,))
    import pyarrow as pa
    cat = _catalog(s)
    cat.create_namespace_if_not_exists("persist")
    tbl = cat.create_table(f"persist.t_{topic.replace('-', '_')}", schema=pa.schema([("v", pa.string())]))
    tbl.append(pa.table({"v": [topic, "second"]}))
    # Every PID we started, Flink's supervised children included.
    flink = FlinkCluster(s)
    pids = [svc.pid() for svc in all_services(s)] + [flink.child_pid("jobmanager"), flink.child_pid("taskmanager")]
    assert all(pids)
    assert down(s, progress=print) == []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(is_alive(p) for p in pids):
        time.sleep(0.5)
    assert not [p for p in pids if is_alive(p)], "stack down left processes running"
    up(s, progress=print)
    assert topic_offsets(s.kafka, topic) == 40
    with psycopg.connect(s.postgres.dsn(s.postgres.serving_db)) as conn:
        assert conn.execute("SELECT count(*) FROM persist_check WHERE v = %s", (topic,)).fetchone()[0] == 1
    with connect(s) as conn:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM persist_check WHERE v = %s", (topic,))
        assert cur.fetchone()[0] == 1
    again = _catalog(s).load_table(f"persist.t_{topic.replace('-', '_')}").scan().to_pandas()
    assert sorted(again["v"]) == sorted([topic, "second"])
