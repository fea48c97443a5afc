"""Benchmark: the risk job end to end on a real isolated stack, three scorer variants, a plain consumer, latency.

In one run, on its own stack (free ports, its own state folder, everything stopped by PID at the end):
1. a backlog of N generated events (no anomalies) is pre-loaded into Kafka, and an unmeasured job runs on
   it for ``--warmup`` seconds (so the first measured variant does not pay the JVM's warm-up alone);
2. the risk job drains it three times, each variant with its own consumer group and Iceberg namespace:
   ``builtin`` (the model replaced by a built-in SQL expression: the limit), ``onnx-row`` (row-at-a-time
   Python UDF) and ``onnx`` (the pandas UDF, the product). Events/s = the backlog / the time from the
   job's tasks RUNNING to the Iceberg commit of its last row, so Kafka in, Iceberg and PostgreSQL out,
   including the job's own warm-up but not its deployment. The rate after the first commit is printed
   beside it for reference only: rows processed while a slow first checkpoint is in flight are
   committed after it, so that figure can overstate (docs/PERFORMANCE.md);
3. the floor: the same job with only its first sinks (validation, deduplication, raw lake, dead letters;
   ``--only-into``), i.e. what this machine allows before any feature, window or score (``--no-floor`` skips it);
   then the scoring path: the job with only its PostgreSQL score sink (``scoring``), timed until its sources have
   read the backlog and the last application's score row is written;
4. a plain Python consumer (what a user might write instead: confluent-kafka, json, per-message
   scikit-learn predict_proba, PostgreSQL inserts committed every 500 messages) on the same backlog, and a
   consumer written for volume doing the scoring path's work (2,000 messages a batch, the contracts' validation,
   de-duplication, one behaviour lookup, the stream's features and ONNX scorer, COPY and one upsert per batch),
   compared with the ``scoring`` row;
5. with the ``onnx`` job still running: new events at a fixed rate (default 2,000 ev/s), generated before
   the clock starts and timed as they are sent (``--event-time live``; ``replay`` keeps the generator's month
   of times, so windows keep closing); latency per application = PostgreSQL ``loan_scores_latest.written_at``
   minus the moment it was handed to Kafka, overall and by the seconds since the last checkpoint trigger;
   and, per vertex, the longest synchronous, asynchronous, alignment and start-delay parts of the
   checkpoints completed meanwhile (where the tail waits). ``--latency-only`` runs this step alone, on the
   product's job over empty topics (``--without GLOB``: less some sinks, an A/B in a second run).

Run: ``.venv/bin/python bench/job_throughput.py [--events N] [--rate R] [--seconds S] [--order onnx,onnx-row,builtin]``.
``--order`` may add ``onnx-long`` (the product with the longer scorer bundle and PostgreSQL flush it had before) for
an A/B.
Targets (docs/PERFORMANCE.md): >= 20,000 events/s; pandas UDF >= 0.6 x built-in; >= 10 x plain consumer; the scoring
path >= 1.5 x the batched consumer; p99 < 1 s at 2,000 events/s (< 0.5 s at 200: run with ``--rate 200``).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cpu_split import cores_between, cpu_by_service, service_roots
from ingestion.generator import GeneratorConfig, generate
from loanrisk.settings import REPO_ROOT, Settings, override
from stack.flink_client import all_tasks_running, checkpoint_stalls, last_checkpoint_ms, rest, source_vertices, vertex_sum

VARIANTS = ("builtin", "onnx-row", "onnx")
# The scorer's Python bundle and the PostgreSQL buffer as they were before the serving path's waits were shortened
# (docs/PERFORMANCE.md): the other arm of an A/B of their cost (bench/serving_latency.py, bench/cost_ladder.py).
LONG_WAITS = {"python_bundle_time_ms": 100, "serving_flush_ms": 200}
# Optional drain variants (``--order``): the product's scorer with other settings, an A/B of their drain cost.
EXTRA_VARIANTS = {"onnx-long": ("onnx", LONG_WAITS)}
# The floor: the same job with only its first sinks (validation, deduplication, raw lake and dead letters);
# no features, windows, scoring or PostgreSQL. What this machine allows before any risk logic runs.
FLOOR_SINKS = ("raw_*", "dead_letter*")
# The scoring path alone, the work the batched consumer is compared with: validation, de-duplication, the
# behaviour windows and lookups, the pandas ONNX scorer and the PostgreSQL score upserts; no lake, no alerts.
SCORING_SINKS = ("pg_loan_scores_latest",)
TARGET_EPS, TARGET_PANDAS_SHARE, TARGET_VS_PLAIN, TARGET_VS_PEER = 20_000, 0.6, 10.0, 1.5
# p99 from Kafka to the PostgreSQL score row, by offered rate (events/s); the nearest rate at or above the run's.
TARGET_P99_S = {200: 0.5, 2_000: 1.0}


def log(msg: str) -> None:
    """Progress on stderr with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def own_stack_state(name: str) -> Path:
    """The state folder of a benchmark's own isolated stack (free ports, its own secrets), with this process's
    environment pointing at it: the stack's own processes (the Flink supervisor, the API) read their settings from
    the environment they inherit. ``stop_own_stack`` stops it and removes the folder."""
    from stack import isolated
    install = Path(os.environ.get("LOANRISK_STACK__INSTALL_DIR", REPO_ROOT / ".loanrisk")).resolve()
    state = install / "bench-stacks" / f"{name}-{os.getpid()}"
    os.environ.update(isolated.isolated_stack_env(state, install, seed=os.getpid()))
    return state


def stop_own_stack(settings: Settings, state: Path) -> None:
    """Stop every process of the benchmark's stack by its PID and remove its state folder."""
    from stack.manager import down
    down(settings, progress=log)
    shutil.rmtree(state, ignore_errors=True)


def settings_for(base: Settings, variant: str, tag: str | None = None) -> Settings:
    """The stack's settings with the variant's scorer, consumer group and Iceberg namespace (named by ``tag``)."""
    tag = tag or variant
    scorer, flink = EXTRA_VARIANTS.get(variant, (variant, {}))
    return override(base, flink={**flink, "scorer": scorer, "consumer_group": f"bench-{tag}"},
                    catalog={"namespace": "bench_" + tag.replace("-", "_")})


def preload(settings: Settings, events: int, seed: int) -> dict[str, int]:
    """Produce ``events`` generated events as fast as possible; returns counts per event kind."""
    from ingestion.producer import make_producer
    producer = make_producer(kafka=settings.kafka)
    counts: dict[str, int] = {}
    started = time.perf_counter()
    for m in islice(generate(GeneratorConfig(seed=seed, customers=None, history_months=1)), events):
        producer.send(m.topic, m.key, m.value_bytes)
        counts[m.kind] = counts.get(m.kind, 0) + 1
    assert producer.flush(120) == 0, "the backlog was not fully acknowledged"
    log(f"backlog: {sum(counts.values()):,} events {counts} in {time.perf_counter() - started:.1f}s")
    return counts


def topic_contents(settings: Settings) -> tuple[int, int]:
    """(events, applications) the three input topics hold now: the backlog, and after the latency run its events
    too (a variant drained after it reads both)."""
    from confluent_kafka import Consumer, TopicPartition

    from ingestion.consumer import consumer_config
    t = settings.kafka.topics
    consumer = Consumer(consumer_config(settings.kafka, "bench-offsets"))
    held: dict[str, int] = {}
    try:
        for topic in (t.applications, t.transactions, t.repayments):
            partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
            marks = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in partitions]
            held[topic] = sum(high - low for low, high in marks)
    finally:
        consumer.close()
    return sum(held.values()), held[t.applications]


def raw_rows(settings: Settings) -> int:
    """Rows committed in the three raw Iceberg tables of the settings' namespace."""
    from loanrisk.lake import committed_rows
    return sum(committed_rows(settings, ("raw_loan_applications", "raw_transactions", "raw_repayments")).values())


def warm_up(base: Settings, seconds: float) -> None:
    """Run the job (built-in scorer, its own consumer group and namespace) for ``seconds``, then cancel it, so
    the first measured variant does not pay the TaskManager JVM's JIT warm-up alone."""
    from jobs.submit import submit_risk_job
    from stack.flink_client import cancel
    settings = settings_for(base, "builtin", tag="warmup")
    job_id = submit_risk_job(settings, name="bench-warmup")
    started = time.perf_counter()
    while not all_tasks_running(settings, job_id) and time.perf_counter() - started < 600:
        time.sleep(0.5)
    time.sleep(seconds)
    log(f"warm-up: {raw_rows(settings):,} rows committed in {seconds:.0f}s (not measured)")
    cancel(settings, job_id)
    time.sleep(5)


def emitted(settings: Settings, job_id: str, sources: dict[str, str]) -> int:
    """Records the job's Kafka sources (``source_vertices``) have emitted so far."""
    return int(sum(vertex_sum(settings, job_id, v, m) for v, m in sources.items()))


def scored_rows(settings: Settings) -> int:
    """Rows in the PostgreSQL ``loan_scores_latest`` table."""
    from loanrisk.serving import serving_connection
    with serving_connection(settings, reader=True) as conn:
        row = conn.execute("SELECT count(*) FROM loan_scores_latest").fetchone()
    return int(row[0]) if row else 0


def drain(base: Settings, variant: str, events: int, timeout_s: float, applications: int = 0) -> dict[str, Any]:
    """Submit the job with ``variant`` (or the ``floor``, or the ``scoring`` path), time it draining the backlog;
    returns the figures. The scoring path is timed until its sources have emitted the whole backlog and the
    PostgreSQL score row of the backlog's last application is written (``applications`` rows in
    ``loan_scores_latest``, emptied first); every other variant to the Iceberg commit of its last raw row."""
    from jobs.submit import submit_risk_job
    from loanrisk.serving import serving_connection
    from stack.flink_client import job_exceptions, job_state
    floor, scoring = variant == "floor", variant == "scoring"
    settings = (settings_for(base, "builtin", tag="floor") if floor else
                settings_for(base, "onnx", tag="scoring") if scoring else settings_for(base, variant))
    if scoring:
        with serving_connection(settings) as conn:
            conn.execute("TRUNCATE loan_scores_latest")
    done_at = applications if scoring else events
    submitted = time.perf_counter()
    job_id = submit_risk_job(settings, name=f"bench-{variant}",
                             only_into=FLOOR_SINKS if floor else SCORING_SINKS if scoring else ())
    while not all_tasks_running(settings, job_id):
        if time.perf_counter() - submitted > timeout_s:
            raise RuntimeError(f"{variant}: tasks not running after {timeout_s}s")
        time.sleep(0.5)
    t0 = time.perf_counter()
    log(f"{variant}: job {job_id} running {t0 - submitted:.1f}s after flink run")
    roots = service_roots(settings)
    cpu0 = cpu_by_service(roots)
    sources: dict[str, str] = {}
    while scoring and not sources:
        sources = source_vertices(settings, job_id)
        time.sleep(0.5)

    def count() -> int:
        # The applications topic is 1 % of the backlog and has its own source: its last score can be written
        # long before the transactions are read, so the scoring path counts once every source is through.
        if not scoring:
            return raw_rows(settings)
        return scored_rows(settings) if emitted(settings, job_id, sources) >= events else 0

    done, first = 0, None
    while done < done_at:
        if time.perf_counter() - t0 > timeout_s:
            raise RuntimeError(f"{variant}: only {done:,}/{done_at:,} rows after {timeout_s}s")
        state = job_state(settings, job_id)
        if state in {"FAILED", "CANCELED"}:
            raise RuntimeError(f"{variant}: job {state}: {job_exceptions(settings, job_id)}")
        time.sleep(0.5)
        done = count()
        if first is None and done > 0:
            first = (time.perf_counter(), done)  # the first checkpoint's commit
    end = time.perf_counter()
    elapsed = end - t0
    cores = cores_between(cpu0, cpu_by_service(roots), elapsed)
    assert first is not None
    # The rate after the first commit, for reference only: rows processed while a slow first checkpoint
    # is in flight are committed after it, so it overstates. The headline is events / elapsed.
    after_first = (done_at - first[1]) * events / done_at / (end - first[0]) if done_at > first[1] and end > first[0] \
        else float("nan")
    where = "PostgreSQL" if scoring else "Iceberg"
    log(f"{variant}: {done_at:,} rows in {where} {elapsed:.1f}s after RUNNING ({events / elapsed:,.0f} events/s); "
        f"after the first commit {f'{after_first:,.0f} events/s' if not math.isnan(after_first) else '-'} "
        f"({done_at - first[1]:,} rows); "
        f"cores: {format_cores(cores)}")
    return {"variant": variant, "job_id": job_id, "settings": settings, "seconds": elapsed, "cores": cores, "events": events,
            "events_per_s": events / elapsed, "after_first_commit_events_per_s": after_first,
            "submit_to_running_s": t0 - submitted}


def format_cores(cores: dict[str, float]) -> str:
    """Average cores per service, busiest first, with their sum (the machine has os.cpu_count())."""
    busy = sorted(((v, k) for k, v in cores.items() if v >= 0.01), reverse=True)
    return ", ".join(f"{k} {v:.2f}" for v, k in busy) + f" (sum {sum(cores.values()):.2f})"


def plain_consumer(settings: Settings, model: Any, budget_s: float, events: int) -> dict[str, Any]:
    """What a user might write instead of the job: consume, parse, score applications with ``model`` and write
    every event and score to PostgreSQL, a statement and a model call per message, a commit per 500 messages."""
    import psycopg
    from confluent_kafka import Consumer

    from contracts.validate import parse_json
    from ingestion.consumer import consumer_config
    kind = "plain"
    t = settings.kafka.topics
    consumer = Consumer(consumer_config(settings.kafka, f"bench-{kind}-consumer"))
    consumer.subscribe([t.applications, t.transactions, t.repayments])
    pg = settings.postgres
    conn = psycopg.connect(pg.dsn(pg.serving_db))
    conn.execute(f"CREATE TABLE IF NOT EXISTS bench_{kind}_events (event_id TEXT PRIMARY KEY, topic TEXT, "
                 "payload JSONB)")
    conn.execute(f"CREATE TABLE IF NOT EXISTS bench_{kind}_scores (loan_id TEXT PRIMARY KEY, probability "
                 "DOUBLE PRECISION, written_at TIMESTAMPTZ DEFAULT now())")
    conn.commit()
    insert_event = f"INSERT INTO bench_{kind}_events VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
    upsert_score = (f"INSERT INTO bench_{kind}_scores (loan_id, probability) VALUES (%s, %s) "
                    "ON CONFLICT (loan_id) DO UPDATE SET probability = EXCLUDED.probability")
    n, started, first = 0, time.perf_counter(), None
    while n < events and time.perf_counter() - started < budget_s:
        batch = [m for m in consumer.consume(num_messages=500, timeout=1.0) if not m.error()]
        if not batch:
            continue
        first = first or time.perf_counter()
        parsed = [(msg.topic(), event) for msg in batch if (event := parse_json(msg.value() or b"")) is not None]
        for topic, event in parsed:
            conn.execute(insert_event, (event.get("event_id"), topic, json.dumps(event)))
            if topic == t.applications:
                p = float(model.predict(application_row(event, model.feature_names))[0])
                conn.execute(upsert_score, (event["application_id"], p))
        conn.commit()
        n += len(parsed)
    elapsed = time.perf_counter() - (first or started)
    consumer.close()
    conn.close()
    log(f"{kind} consumer: {n:,} events in {elapsed:.1f}s -> {n / elapsed:,.0f} events/s")
    return {"events": n, "seconds": elapsed, "events_per_s": n / elapsed}


def batched_consumer(settings: Settings, budget_s: float, events: int, applications: int) -> dict[str, Any]:
    """The scoring path as a Python engineer would write it for volume, against the job's ``scoring`` variant:
    2,000 messages a batch; every event validated against its contract (the Kafka timestamp as now, as the job)
    and de-duplicated by its id; per batch, the applications' behaviour windows looked up in PostgreSQL in one
    statement, their features by the stream's formulas (the scoring API's code), one onnxruntime call with the
    registry's champion and its reason codes (the stream's scorer), the scores COPYed into a staging table
    and upserted by loan id, one commit per batch. It keeps no behaviour windows of its own (the job computes
    them, and re-scores a loan when one closes), so it does less than the row it is compared with.

    Timed from its first message to the commit holding its last application's score."""
    from datetime import datetime, timezone

    import psycopg
    from confluent_kafka import Consumer

    from contracts.events import LOAN_APPLICATION, REPAYMENT, TRANSACTION
    from contracts.validate import parse_json, validate_event
    from ingestion.consumer import consumer_config
    from scoring_api.champion import scorer_from_settings
    from scoring_api.inputs import scoring_input, wanted_windows, window_ms
    from scoring_api.store import read_behaviour_windows
    t = settings.kafka.topics
    contracts = {t.applications: LOAN_APPLICATION, t.transactions: TRANSACTION, t.repayments: REPAYMENT}
    tolerance, window = settings.flink.future_tolerance, window_ms(settings.flink.behaviour_window_days)
    scorer = scorer_from_settings(settings)
    scorer.poll()
    consumer = Consumer(consumer_config(settings.kafka, "bench-batched-consumer"))
    consumer.subscribe(list(contracts))
    pg = settings.postgres
    conn = psycopg.connect(pg.dsn(pg.serving_db))
    conn.execute("CREATE TABLE IF NOT EXISTS bench_batched_scores (loan_id TEXT PRIMARY KEY, probability "
                 "DOUBLE PRECISION, model_version TEXT, reason_codes TEXT, written_at TIMESTAMPTZ DEFAULT now())")
    conn.execute("CREATE TEMPORARY TABLE bench_batched_staging (loan_id TEXT, probability DOUBLE PRECISION, "
                 "model_version TEXT, reason_codes TEXT)")
    conn.commit()
    seen: set[tuple[str, str]] = set()
    n = scored = invalid = repeated = 0
    started, first = time.perf_counter(), None
    while n < events and time.perf_counter() - started < budget_s:
        batch = [m for m in consumer.consume(num_messages=2_000, timeout=1.0) if not m.error()]
        if not batch:
            continue
        first = first or time.perf_counter()
        n += len(batch)
        apps = []
        for msg in batch:
            contract, raw = contracts[str(msg.topic())], msg.value() or b""
            now = datetime.fromtimestamp(msg.timestamp()[1] / 1000, timezone.utc)
            if validate_event(raw, contract, now=now, future_tolerance=tolerance) is not None:
                invalid += 1
                continue
            event = parse_json(raw)
            assert event is not None  # validated
            key = (contract.name, str(event[contract.id_field]))
            if key in seen:
                repeated += 1
                continue
            seen.add(key)
            if contract is LOAN_APPLICATION:
                apps.append(event)
        if apps:
            windows = read_behaviour_windows(conn, wanted_windows(apps, window))
            inputs = [scoring_input(e, windows, window) for e in apps]
            p, version, reasons = scorer.score_matrix(np.array([i.row for i in inputs], dtype=np.float64))
            with conn.cursor() as cur:
                with cur.copy("COPY bench_batched_staging FROM STDIN") as copy:
                    for i, prob, why in zip(inputs, p, reasons, strict=True):
                        copy.write_row((i.event[LOAN_APPLICATION.id_field], float(prob), version, why))
                cur.execute("INSERT INTO bench_batched_scores (loan_id, probability, model_version, reason_codes) "
                            "SELECT loan_id, probability, model_version, reason_codes FROM bench_batched_staging "
                            "ON CONFLICT (loan_id) DO UPDATE SET probability = EXCLUDED.probability, "
                            "model_version = EXCLUDED.model_version, reason_codes = EXCLUDED.reason_codes, "
                            "written_at = now()")
                cur.execute("TRUNCATE bench_batched_staging")
            scored += len(apps)
        conn.commit()
        consumer.commit(asynchronous=True)
    elapsed = time.perf_counter() - (first or started)
    consumer.close()
    conn.close()
    log(f"batched consumer: {n:,} events ({invalid} invalid, {repeated} repeated), {scored:,} applications scored "
        f"in {elapsed:.1f}s -> {n / elapsed:,.0f} events/s")
    return {"events": n, "seconds": elapsed, "events_per_s": n / elapsed, "scored": scored,
            "applications": applications}


def application_row(event: dict[str, Any], names: list[str]) -> np.ndarray:
    """The features ``names`` for one application (behaviour features 0: this consumer keeps no state)."""
    income = float(event["annual_income_minor"]) / 12 or float("nan")
    collateral = event.get("collateral_value_minor")
    f = {"debt_to_income": event["monthly_debt_minor"] / income, "loan_to_income": event["amount_minor"] / (income * 12),
         "installment_to_income": event["installment_minor"] / income,
         "credit_utilization": event["revolving_balance_minor"] / max(event["revolving_limit_minor"], 1),
         "interest_rate": event["interest_rate"], "term_months": event["term_months"],
         "emp_length_years": event.get("emp_length_years") or 0.0, "delinquencies_2y": event["delinquencies_2y"],
         "inquiries_12m": event["inquiries_12m"], "is_secured": float(collateral is not None),
         "loan_to_value": event["amount_minor"] / collateral if collateral else 0.0}
    return np.array([[float(f.get(name, 0.0)) for name in names]], dtype=np.float64)


def inserts_without(base: Settings, globs: list[str]) -> tuple[str, ...]:
    """The risk job's INSERT targets less those matching ``globs`` (an A/B's ``--only-into``)."""
    from jobs.params import sql_params
    from jobs.sqlfiles import load
    targets = [st.insert_target or "" for st in load(REPO_ROOT / "sql" / "risk", sql_params(base)) if st.is_insert]
    keep = tuple(t for t in targets if not any(fnmatch.fnmatch(t, g) for g in globs))
    if len(keep) == len(targets):
        raise SystemExit(f"--without {' '.join(globs)}: no INSERT of the job writes to such a table")
    return keep


def stamped(payload: bytes, at: float) -> bytes:
    """``payload`` with its event time set to ``at`` (epoch seconds): the event happens as it is sent."""
    event = json.loads(payload)
    ms = int(at * 1000)
    event["event_time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
    return json.dumps(event, separators=(",", ":")).encode()


def latency(settings: Settings, job_id: str, rate: float, seconds: float, seed: int, event_time: str = "live",
            settle_s: float = 0.0, phase_job_id: str | None = None) -> dict[str, Any]:
    """Produce at ``rate`` for ``seconds``; per application: PostgreSQL written_at minus hand-over time; and the
    checkpoints' stalls by vertex meanwhile (where the tail waits).

    ``event_time`` ``live``: each event's time is the moment it is sent, as in production, where a behaviour
    window closes once per window length; ``replay``: the generator's own times, a month of them in the run,
    so windows keep closing and each close re-scores every active loan at once. Applications sent in the first
    ``settle_s`` seconds are not measured (after a backlog of old event times, the first live event closes all
    of its windows at once). The latency is grouped by the seconds since the last checkpoint trigger of
    ``phase_job_id`` (a job running beside the measured one), else of ``job_id``.
    """
    from ingestion.producer import make_producer
    from ingestion.pacing import paced
    from loanrisk.serving import serving_connection
    producer = make_producer(kafka=settings.kafka)
    sent_at: dict[str, float] = {}
    # Generated before the clock starts: generating on the fly takes a share of the cores from the job
    # and the producer falls short of the rate.
    stream = list(islice(generate(GeneratorConfig(seed=seed, customers=None, history_months=1,
                                                  start="2021-01-01T00:00:00Z")), int(rate * seconds) + 1))
    started = time.time()
    n = 0
    live = event_time == "live"
    for m in paced(stream, rate=rate):
        now = time.time()
        if now - started >= seconds:
            break
        producer.send(m.topic, m.key, stamped(m.value_bytes, now) if live else m.value_bytes)
        producer.poll(0)
        n += 1
        if m.kind == "loan_application" and now - started >= settle_s:
            sent_at[json.loads(m.value_bytes)["application_id"]] = time.time()
    producer.flush(60)
    achieved = n / (time.time() - started)
    log(f"latency run: {n:,} events at {achieved:,.0f} ev/s, {len(sent_at)} applications; waiting for scores")
    rows: dict[str, float] = {}
    deadline = time.time() + 120
    while time.time() < deadline and len(rows) < len(sent_at):
        with serving_connection(settings, reader=True) as conn:
            got = conn.execute("SELECT loan_id, extract(epoch FROM written_at) FROM loan_scores_latest "
                               "WHERE loan_id = ANY(%s)", (list(sent_at),)).fetchall()
        rows = {k: float(v) for k, v in got}
        time.sleep(2)
    lat = np.array([rows[k] - sent_at[k] for k in rows])
    triggers = sorted(c["trigger_timestamp"] / 1000
                      for c in rest(settings, f"/jobs/{phase_job_id or job_id}/checkpoints")["history"])
    out = {"rate": achieved, "event_time": event_time, "settle_s": settle_s, "applications": len(sent_at),
           "scored": len(rows), "by_phase": by_checkpoint_phase({k: sent_at[k] for k in rows}, rows, triggers),
           "p50_s": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
           "p99_s": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
           "max_s": float(lat.max()) if len(lat) else float("nan"),
           "stalls": checkpoint_stalls(settings, job_id, started * 1000)}
    log(f"latency: {out['scored']}/{out['applications']} scored, p50 {out['p50_s']:.2f}s p99 {out['p99_s']:.2f}s")
    return out


def by_checkpoint_phase(sent: dict[str, float], written: dict[str, float],
                        triggers: list[float]) -> list[tuple[int, int, float, float]]:
    """Latency by the whole seconds between the last checkpoint trigger and the hand-over: (second, count, p50,
    p99), for the applications sent after the first trigger still in Flink's history."""
    phases: dict[int, list[float]] = {}
    for key, at in sent.items():
        before = [x for x in triggers if x <= at]
        if before:
            phases.setdefault(int(at - before[-1]), []).append(written[key] - at)
    return [(s, len(v), float(np.percentile(v, 50)), float(np.percentile(v, 99))) for s, v in sorted(phases.items())]


def main(argv: list[str] | None = None) -> int:
    """Start an isolated stack, run every measurement, print the table, stop the stack."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000, help="Backlog size (events).")
    parser.add_argument("--rate", type=float, default=2_000, help="Latency run: events per second.")
    parser.add_argument("--seconds", type=float, default=60, help="Latency run: duration.")
    parser.add_argument("--plain-budget", type=float, default=90, help="Seconds the plain consumer may run.")
    parser.add_argument("--timeout", type=float, default=900, help="Seconds a variant may take to drain.")
    parser.add_argument("--warmup", type=float, default=45,
                        help="Seconds of an unmeasured job run before the measured ones (0: none).")
    parser.add_argument("--order", default=",".join(VARIANTS),
                        help="The variants' drain order, comma-separated (to see whether going first costs one); "
                             f"may add {', '.join(EXTRA_VARIANTS)} (bundle and flush of {LONG_WAITS}) for an A/B.")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="Skip the floor run (validation and the raw lake only).")
    parser.add_argument("--event-time", choices=("live", "replay"), default="live",
                        help="Latency run: events timed as sent (live), or the generator's month of times (replay).")
    parser.add_argument("--without", action="append", default=[], metavar="GLOB",
                        help="With --latency-only, repeatable: the job less its INSERTs into matching tables.")
    parser.add_argument("--latency-only", action="store_true",
                        help="Only the latency run: the product's job, no backlog, no other variant.")
    args = parser.parse_args(argv)
    order = args.order.split(",")
    if sorted(v for v in order if v not in EXTRA_VARIANTS) != sorted(VARIANTS) or len(set(order)) != len(order):
        parser.error(f"--order must name each of {', '.join(VARIANTS)} once (and may add {', '.join(EXTRA_VARIANTS)})")

    from models.first_champion import ensure_champion
    from stack.flink_client import cancel
    from stack.manager import up
    state = own_stack_state("run")
    base = Settings()
    results: list[dict[str, Any]] = []
    try:
        up(base, progress=log)
        ensure_champion(base, say=log)
        if args.latency_only:
            lat = latency_alone(base, args)
            print_latency(lat, args)
            return 0
        counts = preload(base, args.events, seed=11)
        n = sum(counts.values())
        if args.warmup > 0:
            warm_up(base, args.warmup)
        lat: dict[str, Any] = {}
        # The floor and the scoring path last, outside --order.
        for variant in [*order, *(["floor"] if args.floor else []), "scoring"]:
            held, apps = topic_contents(base)
            r = drain(base, variant, held, args.timeout, applications=apps)
            results.append(r)
            if variant == "onnx":  # the product's job, still running: the latency run
                lat = latency(r["settings"], r["job_id"], args.rate, args.seconds, seed=12,
                              event_time=args.event_time, settle_s=20 if args.event_time == "live" else 0)
            cancel(r["settings"], r["job_id"])
            time.sleep(5)
        from models.synthetic import train_on_generated
        model = train_on_generated(customers=1500, seed=7, families=["gradient_boosting"], budget=1)["candidate"].trained
        held, apps = topic_contents(base)
        plain = plain_consumer(settings_for(base, "onnx"), model, args.plain_budget, held)
        batched = batched_consumer(settings_for(base, "onnx"), args.plain_budget, held, apps)
    finally:
        stop_own_stack(base, state)
    report(results, plain, batched, lat, n, args)
    return 0


def latency_alone(base: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The product's job on empty topics, from its first completed checkpoint (Python workers up), then the
    latency run."""
    return fresh_job_latency(settings_for(base, "onnx"), "bench-onnx",
                             inserts_without(base, args.without) if args.without else (), args, seed=12)


def fresh_job_latency(settings: Settings, name: str, only_into: tuple[str, ...], args: argparse.Namespace,
                      seed: int, cancel_after: bool = False, beside: tuple[str, ...] = (),
                      on_beside: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Submit the job (``only_into``: its INSERTs, all if empty), wait for its first completed checkpoint, then
    the latency run at ``args.rate`` for ``args.seconds`` (``args.event_time`` when given, else live); with
    ``cancel_after``, the job is cancelled afterwards, measured or not.

    ``beside``: the INSERTs of a second job submitted first (``<name>-beside``) and run through the measurement,
    the latency grouped by its checkpoints: a serving job beside a lake job, both on the same cores. It is
    cancelled afterwards whatever ``cancel_after`` says; ``on_beside`` is called with its id once it has
    completed a checkpoint, before the measured job is submitted.
    """
    from jobs.submit import submit_risk_job
    from stack.flink_client import cancel
    jobs: list[str] = []
    try:
        for job_name, inserts in ((f"{name}-beside", beside), (name, only_into)) if beside else ((name, only_into),):
            jobs.append(submit_risk_job(settings, name=job_name, only_into=inserts))
            started = time.perf_counter()
            while last_checkpoint_ms(settings, jobs[-1]) == 0:
                if time.perf_counter() - started > args.timeout:
                    raise RuntimeError(f"{job_name}: no completed checkpoint after {args.timeout:.0f}s")
                time.sleep(1)
            log(f"{job_name}: job {jobs[-1]} completed its first checkpoint "
                f"{time.perf_counter() - started:.0f}s after flink run")
            if beside and on_beside and len(jobs) == 1:
                on_beside(jobs[0])
        return latency(settings, jobs[-1], args.rate, args.seconds, seed=seed,
                       event_time=getattr(args, "event_time", "live"), phase_job_id=jobs[0])
    finally:
        for i, job_id in enumerate(jobs):
            if cancel_after or (beside and i == 0):
                cancel(settings, job_id)
        if cancel_after or beside:
            time.sleep(5)


def print_latency(lat: dict[str, Any], args: argparse.Namespace) -> None:
    """The latency figures, the target, and the checkpoints' stalls by vertex meanwhile."""
    settled = f", the first {lat['settle_s']:.0f}s not measured" if lat["settle_s"] else ""
    print(f"\nlatency, Kafka hand-over -> PostgreSQL score row, {lat['event_time']} event times{settled}, "
          f"{lat['rate']:,.0f} ev/s for {args.seconds:.0f}s: "
          f"{lat['scored']}/{lat['applications']} applications, p50 {lat['p50_s']:.2f}s p99 {lat['p99_s']:.2f}s "
          f"max {lat['max_s']:.2f}s (target p99 < {p99_target(args.rate)}s: "
          f"{'met' if lat['p99_s'] < p99_target(args.rate) else 'NOT met'})")
    print("by seconds from the last checkpoint trigger to the hand-over: " + ", ".join(
        f"{s}s: p50 {p50:.2f} p99 {p99:.2f} (n={n})" for s, n, p50, p99 in lat["by_phase"]))
    stalls = lat["stalls"]
    print(f"checkpoints meanwhile, the longest of each part by vertex over {max((r['checkpoints'] for r in stalls), default=0)} "
          "completed checkpoints (ms; sync: the task thread does nothing else):")
    print(f"  {'sync':>6} {'async':>6} {'align':>6} {'delay':>6}  vertex")
    for r in stalls:
        name = r["vertex"] if len(r["vertex"]) <= 110 else r["vertex"][:50] + " ... " + r["vertex"][-55:]
        print(f"  {r['sync_ms']:>6} {r['async_ms']:>6} {r['alignment_ms']:>6} {r['start_delay_ms']:>6}  {name}")


def p99_target(rate: float) -> float:
    """The p99 target for an offered rate: that of the lowest target rate at or above it, else the highest's."""
    above = [r for r in sorted(TARGET_P99_S) if r >= rate]
    return TARGET_P99_S[above[0] if above else max(TARGET_P99_S)]


def report(results: list[dict[str, Any]], plain: dict[str, Any], batched: dict[str, Any], lat: dict[str, Any],
           n: int, args: argparse.Namespace) -> None:
    """Print the figures and each target next to its baseline."""
    by = {r["variant"]: r for r in results}
    print(f"\nrisk job, {n:,}-event Kafka backlog -> Iceberg + PostgreSQL (parallelism "
          f"{results[0]['settings'].flink.parallelism}, {os.cpu_count()} cores; drained in the order {args.order})")
    print("(variants drained after the latency run read its events too: the events column)")
    print(f"{'variant':<34}{'events':>9}{'events/s':>12}{'after 1st commit':>18}{'seconds':>10}{'vs builtin':>12}")
    names = {"builtin": "built-in SQL expression (limit)", "onnx-row": "row-at-a-time Python UDF",
             "onnx": "pandas UDF + ONNX (the job)", "onnx-long": "the job, bundle 100 ms, flush 200 ms",
             "floor": "floor: validation + raw lake only", "scoring": "scoring path only (PG scores)"}
    shown = [*VARIANTS, *(v for v in EXTRA_VARIANTS if v in by), *(["floor"] if "floor" in by else []), "scoring"]
    for v in shown:
        r = by[v]
        # No such rate when the first rows counted were the last (the scoring path counts once every source is
        # through): a dash, not nan.
        after = r["after_first_commit_events_per_s"]
        after_col = f"{after:>18,.0f}" if not math.isnan(after) else f"{'-':>18}"
        print(f"{names[v]:<34}{r['events']:>9,}{r['events_per_s']:>12,.0f}{after_col}"
              f"{r['seconds']:>10.1f}"
              f"{r['events_per_s'] / by['builtin']['events_per_s']:>12.2f}")
    for label, peer in (("plain consumer (sklearn -> PG)", plain), ("batched consumer (scoring path)", batched)):
        print(f"{label:<34}{peer['events']:>9,}{peer['events_per_s']:>12,.0f}{'-':>18}{peer['seconds']:>10.1f}"
              f"{peer['events_per_s'] / by['builtin']['events_per_s']:>12.2f}")
    print("\naverage cores per service while each variant drained (Python UDF workers count as the TaskManager's):")
    for v in shown:
        print(f"  {v:<9} {format_cores(by[v]['cores'])}")
    print_latency(lat, args)
    pandas = by["onnx"]["events_per_s"]
    checks = [
        # The backlog keeps the generator's months of event times (a replay) and the clock counts the job's own
        # warm-up; bench/cost_ladder.py reads the same target on a live-like backlog too.
        ("events/s end to end (pandas job, replay)", f"{pandas:,.0f}", f">= {TARGET_EPS:,}", pandas >= TARGET_EPS),
        ("pandas job / built-in job", f"{pandas / by['builtin']['events_per_s']:.2f}", f">= {TARGET_PANDAS_SHARE}",
         pandas / by["builtin"]["events_per_s"] >= TARGET_PANDAS_SHARE),
        ("pandas job / plain consumer", f"{pandas / plain['events_per_s']:.1f}x", f">= {TARGET_VS_PLAIN:.0f}x",
         pandas / plain["events_per_s"] >= TARGET_VS_PLAIN),
        (f"p99 latency at {args.rate:,.0f} ev/s", f"{lat['p99_s']:.2f}s", f"< {p99_target(args.rate)}s",
         lat["p99_s"] < p99_target(args.rate)),
    ]
    if "onnx-long" in by:
        print(f"\nA/B, drain cost of the product's shorter bundle and flush: onnx / onnx-long "
              f"{pandas / by['onnx-long']['events_per_s']:.2f}x events/s")
    scoring = by["scoring"]["events_per_s"]
    checks.append(("scoring path / batched consumer", f"{scoring / batched['events_per_s']:.2f}x",
                   f">= {TARGET_VS_PEER}x", scoring / batched["events_per_s"] >= TARGET_VS_PEER))
    print(f"\nthe scoring path: the job with only its PostgreSQL score sink against the batched consumer (same "
          f"validation, de-duplication, behaviour lookups, features, ONNX scorer and score upserts; the job also "
          f"aggregates the behaviour windows and re-scores loans as they close): {scoring / batched['events_per_s']:.2f}x"
          f"; the consumer scored {batched['scored']:,} of the backlog's {batched['applications']:,} applications")
    print(f"\n{'target':<42}{'measured':>12}{'target':>12}  met")
    for name, got, want, ok in checks:
        print(f"{name:<42}{got:>12}{want:>12}  {'yes' if ok else 'NO'}")
    if "floor" in by:
        print(f"\nthe floor (no risk logic) drains at {by['floor']['events_per_s']:,.0f} events/s on this machine: "
              f"{TARGET_EPS / by['floor']['events_per_s']:.1f}x short of {TARGET_EPS:,} before any feature or score")


if __name__ == "__main__":
    raise SystemExit(main())
