"""The Spark Structured Streaming peer of the Flink floor, run by bench/cost_ladder.py on the same stack and backlog.

The peer (bench/spark_peer_job.py, in its own environment) does the floor's work: the three input topics
(read_committed) -> the contracts' validation rendered as Spark SQL (contracts/spark_sql.py) -> de-duplication by
event id -> the raw Iceberg tables, the dead-letters table and topic, in the lake's JDBC catalog, a namespace of
its own. Spark in local mode, ``local[2]``: driver and executor are one JVM, the machine's two cores.

Method, as the ladder measures a rung: the backlog is produced into one open Kafka transaction; the query is
started with a processing-time trigger of 0 s (a micro-batch as soon as the one before has ended and data is
there; checkpoints on local disk), after an unmeasured warm-up query on a copy of the backlog, and waits idle; the
transaction commits and the clock starts. Its events/s = the backlog / the time until the micro-batch holding its
last event has ended: in Spark a micro-batch ends with its commit to every table (foreachBatch returns after the
Iceberg commits), so this is a time to the lake commit, as the Flink floor's ``committed_s`` is. CPU per event =
the CPU of the peer's process tree (the Python driver and Spark's JVM) over the same interval, over the backlog.

Why a processing-time trigger and not ``availableNow``: an availableNow query reads what is in the topics when it
starts and stops, so it could start only after the release and its start-up (planning, the catalog, the first
offsets) would be inside the clock, where the Flink job's deployment is not. The query's exactly-once: each batch's
offsets are logged before it runs and its commit after; a batch run again after a crash appends nothing a table
already has (the batch's tag in the Iceberg snapshot summary, bench/spark_peer_job.py BatchWriter), so each raw and
dead-letter table gets every event once; the dead-letter topic is at least once (Spark's Kafka sink has no
transactions).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.cpu_split import cores_between, cpu_by_service, service_roots
from bench.job_throughput import log
from contracts.events import INPUT_EVENTS
from loanrisk.settings import REPO_ROOT, Settings

PEER = "spark"
JOB = REPO_ROOT / "bench" / "spark_peer_job.py"
# Flink's SQL Kafka connector relocates the Kafka client; Spark's connector loads it unrelocated.
FLINK_KAFKA_SHADE = "org.apache.flink.kafka.shaded."


def peer_config(settings: Settings, warmup: Settings | None, warmup_s: float, jars: list[Path], folder: Path,
                memory: str, max_offsets: int | None) -> dict[str, Any]:
    """The peer's configuration file: where the stack is, the run's topics and namespace, the job's limits."""
    from jobs.params import pii_key_file
    from stack.flink_conf import AWS_JVM_OPTS
    pg, s3, k, f = settings.postgres, settings.s3, settings.kafka, settings.flink
    keys = s3.credentials()

    def run_of(s: Settings, name: str) -> dict[str, Any]:
        t = s.kafka.topics
        return {"namespace": s.catalog.namespace, "group": s.flink.consumer_group,
                "topics": {"loan_application": t.applications, "transaction": t.transactions, "repayment": t.repayments},
                "dead_letter_topic": t.dead_letters, "checkpoint": str(folder / f"checkpoint-{name}")}

    conf: dict[str, Any] = {
        "master": "local[2]", "driver_memory": memory, "shuffle_partitions": f.parallelism,
        "jars": [str(j) for j in jars], "local_dir": str(folder / "tmp"), "java_options": AWS_JVM_OPTS.split(),
        "catalog": {"name": settings.catalog.name, "jdbc_url": pg.jdbc_url(pg.catalog_db), "jdbc_user": pg.user,
                    "jdbc_password": pg.secret(), "warehouse": settings.catalog.warehouse(s3)},
        "s3": {"endpoint": s3.url, "region": s3.region, "access_key_id": keys.access_key_id if keys else "",
               "secret_access_key": keys.secret_access_key if keys else ""},
        "kafka": {"bootstrap": k.bootstrap,
                  "properties": {p: v.replace(FLINK_KAFKA_SHADE, "") for p, v in k.java_properties().items()}},
        "pii": {"key_file": str(pii_key_file(settings)), "key_id": settings.privacy.pii_key_id},
        "future_tolerance_ms": f.future_tolerance_s * 1000, "dedup_retention_s": f.dedup_retention_s,
        "max_offsets_per_trigger": max_offsets, "stop_file": str(folder / "stop"), "run": run_of(settings, "run"),
    }
    if warmup is not None and warmup_s > 0:
        conf["warmup"] = {**run_of(warmup, "warmup"), "seconds": warmup_s}
    return conf


class Peer:
    """The peer's process (its own process group, stopped by its id) and the JSON lines it prints."""

    def __init__(self, python: Path, config: Path, stderr: Path) -> None:
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(REPO_ROOT)}
        self.stderr = stderr.open("w")
        self.proc = subprocess.Popen([str(python), str(JOB), "run", str(config)], stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, env=env, start_new_session=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))
        self.lines.put({"event": "exited"})

    def tail(self, lines: int = 25) -> str:
        """The end of its log (its folder goes with the benchmark's stack)."""
        self.stderr.flush()
        return "\n".join(Path(self.stderr.name).read_text(errors="replace").splitlines()[-lines:])

    def next(self, timeout_s: float) -> dict[str, Any]:
        """The next event it reports; ``failed`` and an early exit raise."""
        try:
            event = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise RuntimeError(f"the Spark peer reported nothing for {timeout_s:.0f}s:\n{self.tail()}") from None
        if event["event"] in ("failed", "exited"):
            raise RuntimeError(f"the Spark peer {event['event']}: {event.get('error', '')}\n{self.tail()}")
        return event

    def wait_for(self, name: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            event = self.next(max(deadline - time.monotonic(), 0.1))
            if event["event"] == name:
                return event

    def stop(self) -> None:
        """Its process group ends: asked first (SIGTERM to the group it leads), then killed."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self.stderr.close()


def run_peer(base: Settings, backlog: Any, folder: Path, warmup_s: float, timeout_s: float, memory: str,
             max_offsets: int | None = None) -> dict[str, Any]:
    """Drain ``backlog`` (a bench.cost_ladder.Backlog) through the Spark peer; returns its figures."""
    from bench.cost_ladder import drop_topics, held_back, stage_settings
    from loanrisk.files import write_private
    from stack.setup import ensure_spark_peer
    python, jars = ensure_spark_peer(base, progress=log)
    shape, events = backlog.shape, len(backlog.messages)
    settings = stage_settings(base, shape, PEER)
    warm = stage_settings(base, f"warmup-{shape}", PEER) if warmup_s > 0 else None
    if warm is not None:
        held_back(warm, backlog).commit_transaction(60)
    producer = held_back(settings, backlog)
    folder.mkdir(parents=True, exist_ok=True)
    config = write_private(folder / f"{shape}.json", json.dumps(
        peer_config(settings, warm, warmup_s, jars, folder / shape, memory, max_offsets)))
    peer = Peer(python, config, folder / f"{shape}.log")
    try:
        started = time.perf_counter()
        ready = peer.wait_for("ready", timeout_s + warmup_s)
        log(f"{shape}/spark: query waiting for data {time.perf_counter() - started:.0f}s after start "
            f"(warm-up {warmup_s:.0f}s included)")
        time.sleep(3)  # idle, as the Flink rungs are before the release
        roots = {**service_roots(settings), "spark peer": peer.proc.pid}
        cpu0, t0 = cpu_by_service(roots), time.perf_counter()
        producer.commit_transaction(60)
        del producer
        rows, batches = 0, []
        while rows < events:
            left = timeout_s - (time.perf_counter() - t0)
            if left <= 0:
                raise RuntimeError(f"{shape}/spark: {rows:,}/{events:,} events after {timeout_s}s")
            event = peer.next(left)
            if event["event"] == "progress" and event["rows"]:
                rows += event["rows"]
                batches.append(event)
        t1 = time.perf_counter()
        cpu1 = cpu_by_service(roots)
        Path(json.loads(config.read_text())["stop_file"]).touch()
        counts = peer.wait_for("stopped", 300)["counts"]
        peer.proc.wait(120)
    finally:
        peer.stop()
    for s in (settings, warm):
        if s is not None:
            drop_topics(s)
    cores = cores_between(cpu0, cpu1, t1 - t0)
    want = {c.name: backlog.counts.get(c.name, 0) for c in INPUT_EVENTS}
    result = {"shape": shape, "stage": PEER, "seconds": t1 - t0, "events_per_s": events / (t1 - t0),
              "us_per_event": cores.get("spark peer", 0.0) * (t1 - t0) / events * 1e6, "cores": cores,
              "batches": len(batches), "batch_ms": [b["durations"].get("triggerExecution") for b in batches],
              "state_rows": [b["state"] for b in batches][-1:], "counts": counts, "ready": ready.get("status"),
              "rows_match": all(counts.get(f"raw_{t}", -1) == n for t, n in
                                (("loan_applications", want["loan_application"]), ("transactions", want["transaction"]),
                                 ("repayments", want["repayment"])))}
    log(f"{shape}/spark: {events:,} events committed {t1 - t0:.1f}s after release ({result['events_per_s']:,.0f} "
        f"events/s) in {len(batches)} micro-batch(es); Spark {result['us_per_event']:.0f} us/event; rows {counts}")
    return result
