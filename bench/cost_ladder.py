"""Benchmark: the risk job's cost ladder, one backlog through cumulative stages, events/s and TaskManager CPU per event.

In one run, on its own stack (free ports, its own state folder, everything stopped by PID at the end):
1. the same generated backlog (no anomalies) in two shapes: ``live`` (event times rescaled, in order, into
   the last ``--live-hours`` before now: one or two day partitions, as live traffic has) and ``replay`` (the
   generator's months of event time, as a replay has);
2. an unmeasured warm-up job, so the first measured stage does not pay the TaskManager JVM's warm-up alone;
3. per shape, the job cut at each stage of STAGES (cumulative: each adds one piece of the product's job) with
   its own topics, consumer group and Iceberg namespace. The backlog is produced into one open Kafka
   transaction; the job (read_committed) is deployed and idle; the transaction commits and the clock starts.
   events/s = the backlog / the time until the job's Kafka sources have emitted all of it (Flink's
   ``numRecordsOut``, refreshed about once a second); TaskManager CPU per event = its CPU (Python workers
   included) from the release until the first checkpoint after that has completed (the buffered tail, the
   last files and the commit belong to the cost), over the backlog;
4. with ``--without GLOB``: the whole job once more without the INSERTs into matching tables, an A/B against
   the top rung in the same run (what one sink costs); with ``--baseline REV``: the whole job once more as
   commit REV had it (its jobs/, sql/ and UDFs), an A/B of a change in the same run; with ``--long-waits``: the
   whole job with the longer scorer bundle and PostgreSQL flush it had before, the drain cost of the shorter ones;
   with ``--floor-with KEY=VALUE`` (``--full-with``): the floor (the whole job) with some flink settings changed,
   an A/B against it. Each rung an arm is compared with drains once more after the arms, and the arm is
   compared with the mean of the rung's two drains: a stage run later on the same stack has measured a few us
   per event cheaper whatever it was, so an arm run only after its rung would take that for its own;
5. per shape, the peers of ``--peers`` on the same backlog (bench/spark_peer.py: Spark Structured Streaming
   doing the floor's work), each printed beside the floor, with Flink's ratio to it;
6. with ``--profile``: on the shape whose whole job costs most, the two stages that add the most CPU per event
   run once more, unmeasured; Java Flight Recorder samples the TaskManager while they drain, and a flame graph
   of its threads is drawn to ``docs/perf/``.

Run: ``.venv/bin/python bench/cost_ladder.py [--events N] [--shapes live,replay] [--stages source,...,full]
[--without GLOB] [--baseline REV] [--long-waits] [--floor-with K=V] [--full-with K=V] [--profile] [--peers spark]``. Targets
(docs/PERFORMANCE.md): the floor (``dead_letters``) <= 60 us of TaskManager CPU per event on the live shape; the full
job >= 0.5 x the floor's events/s; the floor >= 1.5 x each peer's events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cpu_split import cores_between, cpu_by_service, service_roots
from bench.job_throughput import (FLOOR_SINKS, LONG_WAITS, TARGET_EPS, emitted, format_cores, inserts_without,
                                  log, own_stack_state, stop_own_stack)
from ingestion.producer import ConfluentEventProducer
from loanrisk.errors import ConfigError
from loanrisk.settings import REPO_ROOT, Settings, describe_validation_error, override
from stack.flink_client import all_tasks_running, source_vertices

TARGET_FLOOR_US, TARGET_FULL_SHARE, TARGET_PEER_RATIO = 60.0, 0.5, 1.5
PEERS = ("spark",)
SHAPES = ("live", "replay")
FLOOR = "dead_letters"
# Seconds of a profile's recording; a stage drained in less than PROFILE_MIN_S cannot be profiled.
PROFILE_S, PROFILE_MIN_S = 15, 22.0


@dataclass(frozen=True)
class Stage:
    """One rung: the job with only the INSERTs into ``into`` (globs; empty: the whole job)."""

    name: str
    adds: str
    into: tuple[str, ...]
    root: Path = REPO_ROOT  # the tree whose jobs/ and sql/ run: another commit's for --baseline
    flink: tuple[tuple[str, Any], ...] = ()  # flink settings changed for this rung (--long-waits, --floor-with, --full-with)
    against: str = "full"  # the rung an A/B stage is compared with


_SERVING_INTO = ("pg_customer_behaviour_windows", "pg_loan_applications_active")
STAGES: tuple[Stage, ...] = (
    Stage("source", "Kafka sources, event time, watermarks", ("ladder_source",)),
    Stage("parse", "+ parse and validate (parse_event)", ("ladder_checked",)),
    Stage("dedup", "+ de-duplication by event id", ("ladder_unique",)),
    Stage("raw_lake", "+ raw Iceberg tables", ("raw_*",)),
    Stage(FLOOR, "+ dead letters (lake, topic): the floor", FLOOR_SINKS),
    Stage("windows", "+ behaviour windows (lake)", (*FLOOR_SINKS, "customer_behaviour_windows")),
    Stage("lookups", "+ serving upserts, lookup joins", (*FLOOR_SINKS, "customer_behaviour_windows",
                                                         *_SERVING_INTO, "ladder_scoring_input")),
    Stage("scorer", "+ pandas ONNX scorer (scores lake)", (*FLOOR_SINKS, "customer_behaviour_windows",
                                                           *_SERVING_INTO, "scores")),
    Stage("full", "+ PostgreSQL scores, alerts, aggregates", ()),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def without(base: Settings, globs: list[str]) -> Stage:
    """The whole job less the INSERTs into tables matching ``globs``: the B of an A/B against the top rung."""
    keep = inserts_without(base, globs)
    tag = "-".join(re.sub(r"[^a-z0-9_]", "", g.lower()) for g in globs)
    return Stage(f"full-without-{tag}", f"the whole job without {', '.join(globs)}", keep)


def baseline(rev: str, folder: Path) -> Stage:
    """The whole job as commit ``rev`` had it (its tree unpacked into ``folder``: jobs/, sql/ and the UDFs'
    packages): the B of an A/B of code against the top rung, in the same run, on the same stack and backlog.
    The functions jar and the job's parameters are this tree's (the jar only adds functions)."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", rev], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"--baseline {rev}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return Stage(f"full@{rev}", f"the whole job at {rev}", (), root=folder)


# The whole job with the longer scorer bundle and PostgreSQL flush it had before (100 ms, 200 ms): the top rung
# against it is the drain cost of the serving path's shorter waits.
LONG_STAGE = Stage("full-long", "the whole job, bundle 100 ms, flush 200 ms", (), flink=tuple(LONG_WAITS.items()))


def with_settings(base: Settings, assignments: str, rung: str = FLOOR) -> Stage:
    """The floor (or the whole job, ``rung`` "full") with some flink settings changed (``KEY=VALUE,...``): the B of
    an A/B against that rung, e.g. ``checkpoint_interval_ms=30000`` or ``lake_distribution=hash``. Each value is
    validated as a configured one would be, so a bad key or value is one line before any stack starts."""
    flag = "--floor-with" if rung == FLOOR else f"--{rung}-with"
    raw: dict[str, str] = {}
    for item in (a for a in assignments.split(",") if a):
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise SystemExit(f"{flag} {item}: expected KEY=VALUE with KEY a flink setting")
        raw[key] = value
    if not raw:
        raise SystemExit(f"{flag}: expected KEY=VALUE[,KEY=VALUE]")
    try:
        flink = override(base, flink=raw).flink
    except ValidationError as e:
        raise SystemExit(f"{flag}: {describe_validation_error(e, 'flink')}") from None
    except ConfigError as e:
        raise SystemExit(f"{flag}: {e}") from None
    changed = {k: getattr(flink, k) for k in raw}
    tag = "-".join(f"{k.split('_')[0]}{v}" for k, v in changed.items())
    into = next(s.into for s in STAGES if s.name == rung)
    what = "the floor" if rung == FLOOR else "the whole job"
    return Stage(f"{'floor' if rung == FLOOR else rung}-{tag}",
                 f"{what} with {', '.join(f'{k}={v}' for k, v in changed.items())}", into,
                 flink=tuple(changed.items()), against=rung)


def slug(stage: str) -> str:
    """A stage's name as topic, consumer group, namespace and job names take it (a baseline's "full@REV")."""
    return stage.replace("@", "-at-")


def stage_settings(base: Settings, shape: str, stage: str) -> Settings:
    """The stack's settings with the run's own input topics, consumer group and Iceberg namespace (and the
    pandas ONNX scorer, the product's)."""
    name = f"{shape}-{slug(stage)}"
    t = base.kafka.topics
    topics = {**t.model_dump(), "applications": f"ladder-{name}-{t.applications}",
              "transactions": f"ladder-{name}-{t.transactions}", "repayments": f"ladder-{name}-{t.repayments}"}
    return override(base, kafka={"topics": topics}, flink={"scorer": "onnx", "consumer_group": f"ladder-{name}"},
                    catalog={"namespace": "ladder_" + name.replace("-", "_")})


def live_time(payload: bytes, event_ms: int, first_ms: int, last_ms: int, end: datetime, hours: float) -> bytes:
    """``payload`` with its event time moved, in order, onto the ``hours`` before ``end``."""
    span = max(last_ms - first_ms, 1)
    at = end - timedelta(hours=hours) + timedelta(milliseconds=(event_ms - first_ms) * hours * 3_600_000 / span)
    event = json.loads(payload)
    event["event_time"] = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    return json.dumps(event, separators=(",", ":")).encode()


@dataclass
class Backlog:
    """One shape's events, (kind, key, value), and what they hold."""

    shape: str
    messages: list[tuple[str, str, bytes]]
    counts: dict[str, int]
    days: int


def make_backlog(shape: str, events: int, seed: int, live_hours: float) -> Backlog:
    """The generator's first ``events`` events, in the live shape's time or the replay's own."""
    from ingestion.generator import GeneratorConfig, generate
    stream = list(islice(generate(GeneratorConfig(seed=seed, customers=None, history_months=1)), events))
    first, last = stream[0].event_time_ms, stream[-1].event_time_ms
    end = datetime.now(timezone.utc) - timedelta(minutes=1)  # inside the future tolerance with room to spare
    messages: list[tuple[str, str, bytes]] = []
    counts: dict[str, int] = {}
    days: set[str] = set()
    for m in stream:
        value = live_time(m.value_bytes, m.event_time_ms, first, last, end, live_hours) if shape == "live" \
            else m.value_bytes
        days.add(json.loads(value)["event_time"][:10])
        messages.append((m.kind, m.key, value))
        counts[m.kind] = counts.get(m.kind, 0) + 1
    log(f"{shape} backlog: {len(messages):,} events {counts} over {len(days)} event-time days")
    return Backlog(shape, messages, counts, len(days))


def held_back(settings: Settings, backlog: Backlog) -> ConfluentEventProducer:
    """Produce the backlog into the run's topics inside one open Kafka transaction; returns the producer.

    The job reads with read_committed, so it sees nothing until the transaction commits: the whole backlog
    then appears at once, at a moment the benchmark chooses, after the job has been deployed and is idle.
    """
    from ingestion.producer import make_producer
    from stack.services.kafka import ensure_topics
    k = settings.kafka
    ensure_topics(k, k.topics.all()[:3], k.topics.partitions, k.topics.topic_config(k.max_message_bytes))
    topics = {"loan_application": k.topics.applications, "transaction": k.topics.transactions,
              "repayment": k.topics.repayments}
    producer = make_producer(kafka=k, overrides={"transactional.id": f"{k.topics.applications}-loader",
                                                 "transaction.timeout.ms": 600_000})
    assert isinstance(producer, ConfluentEventProducer)  # make_producer's default: librdkafka, with transactions
    producer.begin_transaction()
    for kind, key, value in backlog.messages:
        producer.send(topics[kind], key, value)
    if producer.flush(120) or producer.stats.failed or producer.stats.refused_too_large:
        raise RuntimeError(f"the backlog was not fully handed to Kafka: {producer.stats}")
    return producer


def drop_topics(settings: Settings) -> None:
    """Delete the run's input topics (a million events per run adds up on disk)."""
    from stack.services.kafka import drop_topics as drop
    k = settings.kafka
    drop(k, k.topics.all()[:3])


def checkpoints(settings: Settings, job_id: str) -> dict[str, Any]:
    """Flink's checkpoint statistics of the job."""
    from stack.flink_client import rest
    return dict(rest(settings, f"/jobs/{job_id}/checkpoints"))


def drain_checkpoints(before: dict[str, Any], after: dict[str, Any], released_ms: float) -> dict[str, Any]:
    """The checkpoints of a drain: Flink's counts after it less those at the release, and the failure message of
    the last checkpoint that failed after the release.

    Flink counts a trigger refused while a task is still starting as a failed checkpoint with no entry in its
    history, hence no message; it does not count it against the job. Those happen before the release, so they
    are reported apart from the drain's.
    """
    counts, start = after.get("counts") or {}, before.get("counts") or {}
    failed = (after.get("latest") or {}).get("failed") or {}
    return {"checkpoints": counts.get("completed", 0) - start.get("completed", 0),
            "failed_checkpoints": counts.get("failed", 0) - start.get("failed", 0),
            "failed_before_release": start.get("failed", 0),
            "checkpoint_failure": (failed.get("failure_message")
                                   if failed.get("trigger_timestamp", 0) >= released_ms else None)}


def data_files(settings: Settings) -> int:
    """Data files in the current snapshots of the run's lake tables (each stage has its own namespace, and nothing
    compacts them): the files per event that day partitions and writers multiply."""
    from contracts.tables import LAKE_TABLES
    from loanrisk.lake import snapshot_totals
    return sum(snapshot_totals(settings, [t.name for t in LAKE_TABLES], "total-data-files").values())


def start_stage(settings: Settings, shape: str, stage: Stage, timeout_s: float) -> tuple[str, float]:
    """Submit the job cut at ``stage``; returns its id once every task runs, and the seconds that took."""
    from jobs.submit import submit_risk_job
    submitted = time.perf_counter()
    extra = ("ladder",) if stage.into else ()
    job_id = submit_risk_job(settings, name=f"ladder-{shape}-{slug(stage.name)}", only_into=stage.into,
                             extra_sql=extra, root=stage.root)
    while not all_tasks_running(settings, job_id):
        if time.perf_counter() - submitted > timeout_s:
            raise RuntimeError(f"{shape}/{stage.name}: tasks not running after {timeout_s}s")
        time.sleep(0.5)
    return job_id, time.perf_counter() - submitted


def run_stage(base: Settings, backlog: Backlog, stage: Stage, timeout_s: float) -> dict[str, Any]:
    """Drain the backlog through the job cut at ``stage``; returns its figures."""
    from stack.flink_client import cancel, job_exceptions, job_state
    shape, events = backlog.shape, len(backlog.messages)
    settings = override(stage_settings(base, shape, stage.name), flink=dict(stage.flink))
    producer = held_back(settings, backlog)
    job_id, to_running = start_stage(settings, shape, stage, timeout_s)
    sources: dict[str, str] = {}
    while not sources:
        sources = source_vertices(settings, job_id)
        time.sleep(0.5)
    time.sleep(3)  # deployed and idle: nothing is visible to it yet
    roots = service_roots(settings)
    before, released_ms = checkpoints(settings, job_id), time.time() * 1000
    cpu0, t0 = cpu_by_service(roots), time.perf_counter()
    producer.commit_transaction(60)
    del producer  # its connections close now, not when the stack is already down
    done = 0
    while done < events:
        if time.perf_counter() - t0 > timeout_s:
            raise RuntimeError(f"{shape}/{stage.name}: sources emitted {done:,}/{events:,} after {timeout_s}s")
        if job_state(settings, job_id) in {"FAILED", "CANCELED"}:
            raise RuntimeError(f"{shape}/{stage.name}: job failed: {job_exceptions(settings, job_id)}")
        time.sleep(0.2)
        done = emitted(settings, job_id, sources)
    # The sources have emitted it all (Flink refreshes the metric about once a second, so this is up to a
    # second late). Its CPU counts until the first checkpoint triggered after that has completed: the
    # buffered tail, the last files and the commit are part of the cost.
    t1, wall1 = time.perf_counter(), time.time() * 1000
    committed = float("nan")
    while time.perf_counter() - t1 < 120:
        done_ckpt = (checkpoints(settings, job_id).get("latest") or {}).get("completed") or {}
        if done_ckpt.get("trigger_timestamp", 0) >= wall1:
            committed = time.perf_counter() - t0
            break
        time.sleep(0.25)
    cpu1, t2 = cpu_by_service(roots), time.perf_counter()
    time.sleep(3)  # each table's committer commits when it hears the checkpoint completed
    files = data_files(settings)
    cores = cores_between(cpu0, cpu1, t2 - t0)
    stats = checkpoints(settings, job_id)
    drained = drain_checkpoints(before, stats, released_ms)
    tm_seconds = cores.get("flink taskmanager", 0.0) * (t2 - t0)
    result = {"shape": shape, "stage": stage.name, "adds": stage.adds, "against": stage.against, "seconds": t1 - t0,
              "settings_changed": bool(stage.flink),
              "events_per_s": events / (t1 - t0),
              "tm_us_per_event": tm_seconds / events * 1e6, "cores": cores, "committed_s": committed,
              "jm_us_per_event": cores.get("flink jobmanager", 0.0) * (t2 - t0) / events * 1e6,
              "to_running_s": to_running, "data_files": files, **drained,
              "max_checkpoint_s": (stats.get("summary", {}).get("end_to_end_duration", {}).get("max") or 0) / 1000}
    log(f"{shape}/{stage.name}: {events:,} events emitted {t1 - t0:.1f}s after release "
        f"({result['events_per_s']:,.0f} events/s), committed at {committed:.1f}s in {files:,} data files; TaskManager "
        f"{result['tm_us_per_event']:.0f} us/event; cores until committed: {format_cores(cores)}"
        + (f"; checkpoints failed: {drained['failed_checkpoints']}" if drained["failed_checkpoints"] else "")
        + (f" (the last: {drained['checkpoint_failure']})" if drained["checkpoint_failure"] else "")
        + (f"; before the release {drained['failed_before_release']} checkpoint triggers were refused while a task "
           "was starting" if drained["failed_before_release"] else ""))
    cancel(settings, job_id)
    time.sleep(3)
    drop_topics(settings)
    return result


def warm_up(base: Settings, backlog: Backlog, seconds: float, timeout_s: float) -> None:
    """Run the whole job on a backlog for ``seconds``, unmeasured, then cancel it."""
    from stack.flink_client import cancel
    settings = stage_settings(base, "warmup", "full")
    held_back(settings, backlog).commit_transaction(60)
    job_id, _ = start_stage(settings, "warmup", STAGES[-1], timeout_s)
    time.sleep(seconds)
    cancel(settings, job_id)
    log(f"warm-up: the whole job ran {seconds:.0f}s (not measured)")
    time.sleep(3)
    drop_topics(settings)


def profile(base: Settings, backlog: Backlog, stage: Stage, out: Path, timeout_s: float) -> dict[str, Any]:
    """Run ``stage`` again (unmeasured), record the TaskManager with Java Flight Recorder while it drains, and
    draw the flame graph of every thread."""
    from bench.flame import draw, hottest_frames, inclusive_frames, jfr_record, jfr_tree
    from stack.flink_client import cancel
    shape = backlog.shape
    settings = stage_settings(base, shape, f"{stage.name}-profile")
    producer = held_back(settings, backlog)
    job_id, _ = start_stage(settings, shape, stage, timeout_s)
    time.sleep(3)
    tm = service_roots(settings)["flink taskmanager"]
    producer.commit_transaction(60)
    del producer
    time.sleep(3)  # into the steady drain
    # Kept beside the installation (not in the stack's state folder, removed at the end) for Java Mission Control.
    recording = jfr_record(tm, PROFILE_S, settings.install_dir / "profiles" / f"{shape}-{stage.name}.jfr")
    cancel(settings, job_id)
    time.sleep(3)
    drop_topics(settings)
    graph = jfr_tree(recording, Path(os.readlink(f"/proc/{tm}/exe")).parent)
    if not graph["value"]:
        log(f"profile {shape}/{stage.name}: the recording holds no execution samples")
        return {}
    draw(graph, out, f"{stage.name} stage, {shape} backlog: the TaskManager's threads on CPU, {PROFILE_S} s "
                     "of Java Flight Recorder samples")
    threads = sorted(((t["value"] / graph["value"], t["name"]) for t in graph["children"]), reverse=True)
    log(f"profile {shape}/{stage.name}: {out} ({graph['value']:,} samples; recording {recording})")
    return {"stage": stage.name, "picture": str(out), "samples": graph["value"], "threads": threads,
            "hottest": hottest_frames(graph, 10), "inclusive": inclusive_frames(graph, 12, prefix="org.apache.")}


def main(argv: list[str] | None = None) -> int:
    """Start an isolated stack, preload both shapes, climb the ladder on each, print the table, stop the stack."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="Backlog size per shape (events): the first rungs drain it in seconds, and their rate "
                        "is read between readings of a metric refreshed once a second.")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="Comma-separated: live, replay.")
    parser.add_argument("--stages", default=",".join(STAGE_NAMES), help="Comma-separated, from: "
                        + ", ".join(STAGE_NAMES))
    parser.add_argument("--live-hours", type=float, default=20.0,
                        help="The live shape's event times span this many hours before now.")
    parser.add_argument("--warmup", type=float, default=40, help="Seconds of an unmeasured job run first (0: none).")
    parser.add_argument("--timeout", type=float, default=900, help="Seconds a stage may take.")
    parser.add_argument("--without", action="append", default=[], metavar="GLOB",
                        help="Repeatable: also run the whole job without the INSERTs into matching tables (an A/B "
                             "against the top rung, in the same run).")
    parser.add_argument("--baseline", metavar="REV",
                        help="Also run the whole job as commit REV had it (its jobs/ and sql/): an A/B of a change "
                             "against the top rung, in the same run.")
    parser.add_argument("--long-waits", action="store_true",
                        help="Also run the whole job with the 100 ms scorer bundle and 200 ms PostgreSQL flush it "
                             "had before: an A/B of the shorter waits' drain cost against the top rung.")
    parser.add_argument("--floor-with", metavar="KEY=VALUE[,KEY=VALUE]", action="append", default=[],
                        help="Also run the floor with these flink settings changed (e.g. checkpoint_interval_ms=30000 or "
                             "lake_distribution=hash): an A/B against the floor, in the same run; repeat for more arms.")
    parser.add_argument("--full-with", metavar="KEY=VALUE[,KEY=VALUE]", action="append", default=[],
                        help="Also run the whole job with these flink settings changed: an A/B against the top rung.")
    parser.add_argument("--profile", action="store_true",
                        help="Also draw flame graphs of the two costliest stages into docs/perf/.")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="Comma-separated peers doing the floor's work on each shape's backlog, printed beside the "
                             "floor: spark (bench/spark_peer.py; its environment is installed on first use); '' for none.")
    parser.add_argument("--spark-memory", default="6g", help="The Spark peer's JVM heap (driver and executor in one).")
    parser.add_argument("--spark-max-offsets", type=int, default=None,
                        help="maxOffsetsPerTrigger of the Spark peer (default: none, the backlog is one micro-batch).")
    args = parser.parse_args(argv)
    shapes = [s for s in args.shapes.split(",") if s]
    stages = [s for s in args.stages.split(",") if s]
    if not shapes or set(shapes) - set(SHAPES):
        parser.error(f"--shapes takes {', '.join(SHAPES)}")
    if not stages or set(stages) - set(STAGE_NAMES):
        parser.error(f"--stages takes {', '.join(STAGE_NAMES)}")
    peers = [p for p in args.peers.split(",") if p]
    if set(peers) - set(PEERS):
        parser.error(f"--peers takes {', '.join(PEERS)}")
    chosen = [s for s in STAGES if s.name in stages]

    from models.first_champion import ensure_champion
    from stack.manager import up
    state = own_stack_state("ladder")
    base = Settings()
    # A bad one fails before the stack starts.
    settings_ab = [with_settings(base, a) for a in args.floor_with] + [with_settings(base, a, "full") for a in args.full_with]
    results: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    peer_results: list[dict[str, Any]] = []
    backlogs = {shape: make_backlog(shape, args.events, seed=11 + i, live_hours=args.live_hours)
                for i, shape in enumerate(shapes)}
    try:
        up(base, progress=log)
        ensure_champion(base, say=log)
        if args.warmup > 0:
            warm_up(base, backlogs[shapes[0]], args.warmup, args.timeout)
        ab = [without(base, args.without)] if args.without else []
        if args.long_waits:
            ab.append(LONG_STAGE)
        ab.extend(settings_ab)
        if args.baseline:
            ab.append(baseline(args.baseline, state / "baseline"))
        for shape in shapes:
            for stage in [*chosen, *ab]:
                results.append(run_stage(base, backlogs[shape], stage, args.timeout))
            for rung in bracketing(chosen, ab):
                # Under a name of its own: its own topics, consumer group and namespace, as each drain has.
                again = replace(rung, name=f"{rung.name}-again")
                results.append({**run_stage(base, backlogs[shape], again, args.timeout), "again_of": rung.name})
            if "spark" in peers:
                from bench.spark_peer import run_peer
                peer_results.append(run_peer(base, backlogs[shape], state / "spark-peer", args.warmup, args.timeout,
                                             args.spark_memory, args.spark_max_offsets))
        if args.profile:
            shape, costly = costliest(results, 2)
            for stage in costly:
                out = REPO_ROOT / "docs" / "perf" / f"flame-{shape}-{stage.name}.png"
                profiles.append(profile(base, backlogs[shape], stage, out, args.timeout))
    finally:
        stop_own_stack(base, state)
    report(results, backlogs, profiles)
    report_peers(results, peer_results, backlogs)
    return 0


def report_peers(results: list[dict[str, Any]], peers: list[dict[str, Any]], backlogs: dict[str, Backlog]) -> None:
    """Each peer beside the Flink floor on the same backlog: events/s to the lake commit, CPU per event, the ratio."""
    by = {(r["shape"], r["stage"]): r for r in results}
    for shape in dict.fromkeys(p["shape"] for p in peers):
        floor = by.get((shape, FLOOR))
        print(f"\npeers doing the floor's work, {shape} backlog ({len(backlogs[shape].messages):,} events): events/s to "
              "the lake commit of the last event; CPU of the engine's processes per event")
        print(f"{'engine':<52}{'events/s':>10}{'sources':>10}{'us/event':>10}{'+JM':>6}{'engine cores':>14}"
              f"{'batches':>9}")
        if floor:
            tm = floor["tm_us_per_event"]
            jm = floor["jm_us_per_event"]
            busy = floor["cores"].get("flink taskmanager", 0.0) + floor["cores"].get("flink jobmanager", 0.0)
            print(f"{'Flink floor (TaskManager; +JM: JobManager)':<52}{to_commit(floor, backlogs[shape]):>10,.0f}"
                  f"{floor['events_per_s']:>10,.0f}{tm:>10.0f}{jm:>+6.0f}{busy:>14.2f}{floor['checkpoints']:>9}")
        for p in (p for p in peers if p["shape"] == shape):
            print(f"{'Spark Structured Streaming, local[2] (JVM + driver)':<52}{p['events_per_s']:>10,.0f}{'':>10}"
                  f"{p['us_per_event']:>10.0f}{'':>6}{p['cores'].get('spark peer', 0.0):>14.2f}{p['batches']:>9}")
            print("  Spark: processing-time trigger of 0 s, checkpoints on local disk; raw and dead-letters tables once per "
                  "event (each batch tagged in its snapshots), dead-letter topic at least once; dead letters stored as "
                  "<text:N>, late events (past the de-duplication's watermark) dropped: docs/PERFORMANCE.md")
            print(f"  Spark's rows: {p['counts']} ({'as produced' if p['rows_match'] else 'NOT as produced'}); "
                  f"micro-batch ms: {p['batch_ms']}")
            if floor:
                ratio = to_commit(floor, backlogs[shape]) / p["events_per_s"]
                print(f"  Flink / Spark, events/s to the commit: {ratio:.2f} (target >= {TARGET_PEER_RATIO}: "
                      f"{'met' if ratio >= TARGET_PEER_RATIO else 'NOT met'}); sources drained against Spark's commit: "
                      f"{floor['events_per_s'] / p['events_per_s']:.2f}; Spark's CPU per event over Flink's TaskManager's: "
                      f"{p['us_per_event'] / floor['tm_us_per_event']:.2f}")
            for arm in (r for r in results if r["shape"] == shape and r.get("against") == FLOOR):
                print(f"  {arm['adds']} / Spark, events/s to the commit: "
                      f"{to_commit(arm, backlogs[shape]) / p['events_per_s']:.2f} (an A/B arm, not the product)")


def to_commit(row: dict[str, Any], backlog: Backlog) -> float:
    """A Flink rung's events/s to the completed checkpoint after its last event (its lake commit)."""
    return len(backlog.messages) / row["committed_s"]


def bracketing(chosen: list[Stage], ab: list[Stage]) -> list[Stage]:
    """The rungs some arm is compared with, in ladder order: each drains again after the arms."""
    against = {stage.against for stage in ab}
    return [stage for stage in chosen if stage.name in against]


def costliest(results: list[dict[str, Any]], k: int) -> tuple[str, list[Stage]]:
    """The shape whose whole job costs the most per event, and the ``k`` stages that add the most TaskManager CPU
    per event there over the stage before (among those draining for long enough to be sampled)."""
    shapes = {r["shape"]: r["tm_us_per_event"] for r in results if r["stage"] == STAGES[-1].name} or \
        {r["shape"]: r["tm_us_per_event"] for r in results}
    shape = max(shapes, key=lambda name: shapes[name])
    rows = [r for r in results if r["shape"] == shape and r["stage"] in STAGE_NAMES]
    added = [(r["tm_us_per_event"] - (rows[i - 1]["tm_us_per_event"] if i else 0.0), r["stage"])
             for i, r in enumerate(rows) if r["seconds"] >= PROFILE_MIN_S]
    names = {name for _, name in sorted(added, reverse=True)[:k]}
    return shape, [s for s in STAGES if s.name in names]


def report(results: list[dict[str, Any]], backlogs: dict[str, Backlog], profiles: list[dict[str, Any]]) -> None:
    """Print the ladder per shape, then each target next to its figure."""
    for shape in dict.fromkeys(r["shape"] for r in results):
        b = backlogs[shape]
        rows = [r for r in results if r["shape"] == shape and r["stage"] in STAGE_NAMES]
        ab = [r for r in results if r["shape"] == shape and r["stage"] not in STAGE_NAMES and "again_of" not in r]
        again = {r["again_of"]: r for r in results if r["shape"] == shape and "again_of" in r}
        c = b.counts
        print(f"\ncost ladder, {shape} backlog: {len(b.messages):,} events ({c.get('transaction', 0):,} transactions, "
              f"{c.get('repayment', 0):,} repayments, {c.get('loan_application', 0):,} applications) over "
              f"{b.days} event-time days; {os.cpu_count()} cores shared by every service")
        print(f"{'stage':<14}{'adds':<42}{'events/s':>10}{'TM us/ev':>10}{'+us/ev':>8}{'TM cores':>10}"
              f"{'committed':>11}{'ckpts ok/failed':>17}{'data files':>12}")
        previous = 0.0
        for r in rows:
            us = r["tm_us_per_event"]
            print(f"{r['stage']:<14}{r['adds']:<42}{r['events_per_s']:>10,.0f}{us:>10.0f}{us - previous:>+8.0f}"
                  f"{r['cores'].get('flink taskmanager', 0.0):>10.2f}{r['committed_s']:>10.1f}s"
                  f"{r['checkpoints']:>10}/{r['failed_checkpoints']:<6}{r.get('data_files', 0):>12,}")
            previous = us
        for r in ab:
            line = (f"A/B, {shape}: {r['adds']}: {r['events_per_s']:,.0f} events/s, {r['tm_us_per_event']:.0f} us/event, "
                    f"committed at {r['committed_s']:.1f}s in {r.get('data_files', 0):,} data files, checkpoints "
                    f"{r['checkpoints']}/{r['failed_checkpoints']} ok/failed")
            top = next((t for t in rows if t["stage"] == r["against"]), None)
            if top:
                # Each figure reads "costs N": the rung less the arm for what the arm leaves out or goes back
                # on, the arm less the rung for settings the arm changes. The rung is the mean of its drains
                # before and after the arms, when it drained twice.
                second = again.get(top["stage"])
                rung_us = (top["tm_us_per_event"] + second["tm_us_per_event"]) / 2 if second else top["tm_us_per_event"]
                cost = rung_us - r["tm_us_per_event"]
                what = ("us/event for this tree's change" if "@" in r["stage"]
                        else "us/event with the arm's settings" if r.get("settings_changed")
                        else "us/event for what was left out")
                if r.get("settings_changed"):
                    cost = -cost
                rerun = (f"; again after the arms {second['events_per_s']:,.0f} events/s, "
                         f"{second['tm_us_per_event']:.0f} us/event, mean {rung_us:.0f}" if second else "")
                line += (f" ({top['stage']}: {top['events_per_s']:,.0f} events/s, {top['tm_us_per_event']:.0f} us/event, "
                         f"committed at {top['committed_s']:.1f}s in {top.get('data_files', 0):,} data files{rerun}; "
                         f"{cost:+.0f} {what})")
            print(line)
    by = {(r["shape"], r["stage"]): r for r in results}
    checks = []
    for shape in backlogs:
        floor, full = by.get((shape, FLOOR)), by.get((shape, "full"))
        if floor and shape == "live":
            checks.append((f"floor TaskManager CPU per event ({shape})", f"{floor['tm_us_per_event']:.0f} us",
                           f"<= {TARGET_FLOOR_US:.0f} us", floor["tm_us_per_event"] <= TARGET_FLOOR_US))
        if full:
            # To the lake commit, not to the sources' last event: the rows are in the lake (and their scores in
            # PostgreSQL) by then.
            eps = len(backlogs[shape].messages) / full["committed_s"]
            checks.append((f"whole job events/s to the lake commit ({shape})",
                           f"{eps:,.0f}" if eps == eps else "-", f">= {TARGET_EPS:,}", eps >= TARGET_EPS))
        if floor and full:
            share = full["events_per_s"] / floor["events_per_s"]
            checks.append((f"full job / floor events/s ({shape})", f"{share:.2f}", f">= {TARGET_FULL_SHARE}",
                           share >= TARGET_FULL_SHARE))
    if checks:
        print(f"\n{'target':<44}{'measured':>12}{'target':>12}  met")
        for name, got, want, ok in checks:
            print(f"{name:<44}{got:>12}{want:>12}  {'yes' if ok else 'NO'}")
    for p in profiles:
        if p:
            print(f"\nflame graph of the {p['stage']} stage ({p['samples']:,} samples): {p['picture']}")
            print("  samples per thread: " + "; ".join(f"{name[8:60]} {share:.0%}" for share, name in p["threads"][:6]))
            print("  on top of the stack (self):")
            for name, share in p["hottest"]:
                print(f"  {share:>5.1%}  {name}")
            print("  on the stack (with what they call), Flink, Iceberg, Parquet, Hadoop and Kafka frames:")
            for name, share in p["inclusive"]:
                print(f"  {share:>5.1%}  {name}")

if __name__ == "__main__":
    raise SystemExit(main())
