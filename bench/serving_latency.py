"""Benchmark: the serving path's latency, A/B in one run, at a live rate (default 200 events/s).

One isolated stack (free ports, its own state folder, everything stopped by PID at the end). Each arm is the
product's risk job with some settings or sinks changed; arms run one after another on the same stack, in
``--rounds`` rounds (so an arm's figure is seen twice and a warm-up shows as the first round's difference):

- ``product``: the job as shipped (the baseline every other arm is compared with): ``flink.python_bundle_time_ms``
  and ``flink.serving_flush_ms`` at their defaults, the floor the serving path waits for before any checkpoint
  (the scorer's bundle and the PostgreSQL buffer);
- ``lake-hash``: the lake's writers hash-distributed by day partition (``flink.lake_distribution`` 'hash'), as for
  a replay of months of history;
- ``long-waits``: both as they were before they were shortened (100 ms and 200 ms);
- ``long-flush``, ``long-bundle``: only one of the two as it was;
- ``serving-only``: the job less every Iceberg INSERT (what a serving job apart from the lake would be: its
  checkpoints carry no lake commit);
- ``serving-only-long``: both;
- ``serving-apart``: the serving job of ``serving-only`` with a second job beside it writing the lake (every Iceberg
  INSERT), both on the same cores: the issue's serving path apart from the lake's checkpoints, at the price of a
  second job reading every topic. Its latency is grouped by the lake job's checkpoints;
- ``serving-apart-pinned``: the same, with the lake job on a TaskManager of its own held to one core (its process
  tree's CPU affinity, put back afterwards): what a serving job on hardware the lake job does not share would see,
  as near as one machine comes. The other core is not the serving job's alone (Kafka, PostgreSQL, the object
  store and the load generator run on both).

For each: a fresh job on the topics (one consumer group, so it starts where the previous arm's job stopped),
its first completed checkpoint awaited, then new events timed as they are sent for ``--seconds``; latency per
application = PostgreSQL ``loan_scores_latest.written_at`` minus its hand-over to Kafka (bench/job_throughput.py
``latency``). Each arm sends its own generated stream (a seed per arm and round), so no arm sees another's rows.
Each round starts one arm later in the list than the round before (with two arms: A B, then B A), since the arm
that runs first in a round has been the slower one whatever it was.

Run: ``.venv/bin/python bench/serving_latency.py [--rate 200] [--seconds 120] [--rounds 2] [--arms a,b]``.
Target (docs/PERFORMANCE.md): p99 < 0.5 s at 200 events/s, < 1 s at 2,000.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cpu_split import _processes
from bench.job_throughput import (LONG_WAITS, fresh_job_latency, inserts_without, log, own_stack_state, p99_target,
                                  settings_for, stop_own_stack)
from contracts.tables import LAKE_TABLES as LAKE
from loanrisk.settings import Settings, override
from stack.flink_client import rest

# Every Iceberg table: what a serving job apart from the lake would not write.
LAKE_TABLES = tuple(t.name for t in LAKE)
ARMS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "product": ({}, ()),
    # The lake's writers hash-distributed by day partition, as for a replay of months (flink.lake_distribution).
    "lake-hash": ({"lake_distribution": "hash"}, ()),
    "long-waits": (LONG_WAITS, ()),
    "long-flush": ({"serving_flush_ms": LONG_WAITS["serving_flush_ms"]}, ()),
    "long-bundle": ({"python_bundle_time_ms": LONG_WAITS["python_bundle_time_ms"]}, ()),
    "serving-only": ({}, LAKE_TABLES),
    "serving-only-long": (LONG_WAITS, LAKE_TABLES),
    "serving-apart": ({}, LAKE_TABLES),
    "serving-apart-pinned": ({}, LAKE_TABLES),
}
# Arms whose lake INSERTs run as a second job beside the measured one.
LAKE_BESIDE = frozenset({"serving-apart", "serving-apart-pinned"})
# Arms whose lake job is held to one core, on a TaskManager of its own.
LAKE_PINNED = frozenset({"serving-apart-pinned"})
LAKE_CORE = 1


def run_arm(base: Settings, arm: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One arm: submit (the lake job beside first, if the arm has one), wait for the first checkpoint, measure,
    cancel."""
    flink, without = ARMS[arm]
    only_into = inserts_without(base, list(without)) if without else ()
    beside = without if arm in LAKE_BESIDE else ()  # exactly the INSERTs the measured job leaves out
    pinned: list[int] = []

    def pin(job_id: str) -> None:
        pinned.append(pin_job(base, job_id, {LAKE_CORE}))

    try:
        return fresh_job_latency(override(settings_for(base, "onnx"), flink=flink), f"bench-{arm}", only_into, args,
                                 seed=seed, cancel_after=True, beside=beside,
                                 on_beside=pin if arm in LAKE_PINNED else None)
    finally:
        if pinned:
            set_affinity_tree(pinned[0], set(range(os.cpu_count() or 1)))


def pin_job(settings: Settings, job_id: str, cores: set[int]) -> int:
    """Hold the one TaskManager ``job_id`` runs on, its threads and its Python workers, to ``cores``; returns its
    PID. A job spread over several TaskManagers cannot be held apart, so that is an error."""
    where = {tm for vertex in rest(settings, f"/jobs/{job_id}")["vertices"]
             for tm in (t["taskmanager-id"] for t in rest(settings, f"/jobs/{job_id}/vertices/{vertex['id']}/"
                                                                   "taskmanagers")["taskmanagers"])}
    if len(where) != 1:
        raise RuntimeError(f"job {job_id} runs on {len(where)} TaskManagers ({', '.join(sorted(where))}); "
                           "it can be held to one core only on one of its own")
    pid = taskmanager_pid(settings, where.pop())
    set_affinity_tree(pid, cores)
    log(f"job {job_id}: its TaskManager (pid {pid}) and its Python workers held to core(s) {sorted(cores)}")
    return pid


def taskmanager_pid(settings: Settings, resource_id: str) -> int:
    """The PID of the TaskManager Flink names ``resource_id`` (``127.0.0.1:<rpc port>-<suffix>``): the
    stack's TaskManager process listening on that port."""
    from stack.services import all_services
    from stack.supervisor import taskmanager_role
    port = int(resource_id.rsplit(":", 1)[1].split("-")[0])
    inodes = {inode for inode, local in _listening() if local == port}
    flink = next(svc for svc in all_services(settings, with_prefect=False) if svc.name == "flink")
    for n in range(1, settings.flink.taskmanagers + 1):
        pid = flink.child_pid(taskmanager_role(n))  # type: ignore[attr-defined]
        if pid and inodes & _socket_inodes(pid):
            return int(pid)
    raise RuntimeError(f"no TaskManager of this stack listens on port {port} ({resource_id})")


def _listening() -> list[tuple[str, int]]:
    """(socket inode, local port) of every listening TCP socket."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                out.append((fields[9], int(fields[1].rsplit(":", 1)[1], 16)))
    return out


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def set_affinity_tree(pid: int, cores: set[int]) -> None:
    """Set the CPU affinity of every thread of ``pid`` and of its descendants (affinity is per thread; threads
    and processes started later inherit their creator's)."""
    parents = {p: parent for p, (parent, _cpu) in _processes().items()}
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    for proc in tree:
        try:
            for task in Path(f"/proc/{proc}/task").iterdir():
                os.sched_setaffinity(int(task.name), cores)
        except OSError:
            continue  # ended meanwhile


def round_order(arms: list[str], r: int) -> list[str]:
    """The arms in the order round ``r`` (from 0) runs them: each round starts one arm later."""
    k = r % len(arms)
    return arms[k:] + arms[:k]


def main(argv: list[str] | None = None) -> int:
    """Start an isolated stack, run every arm each round, print the table, stop the stack."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200, help="Events per second offered.")
    parser.add_argument("--seconds", type=float, default=120, help="Seconds each arm is measured.")
    parser.add_argument("--rounds", type=int, default=2, help="Times each arm runs (in turn with the others).")
    parser.add_argument("--arms", default="product,long-waits,serving-only",
                        help=f"Comma-separated arms of {', '.join(ARMS)}; the first is the baseline.")
    parser.add_argument("--timeout", type=float, default=300, help="Seconds a job may take to its first checkpoint.")
    args = parser.parse_args(argv)
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown or args.rounds < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error(f"arms are {', '.join(ARMS)} (got {', '.join(unknown)}); rounds, rate and seconds > 0"
                     if unknown else "rounds, rate and seconds must be > 0")

    from models.first_champion import ensure_champion
    from stack.manager import up
    state = own_stack_state("run")
    base = Settings()
    if LAKE_PINNED & set(arms):
        # A TaskManager per job, so the lake job's can be held to its core; every arm runs on this cluster.
        base = override(base, flink={"taskmanagers": 2})
        log(f"the lake job runs on a TaskManager of its own in {', '.join(sorted(LAKE_PINNED & set(arms)))}: "
            "the cluster has 2 TaskManagers for every arm")
    elif LAKE_BESIDE & set(arms):
        # Two jobs at the job's parallelism need twice the slots; every arm runs on the same TaskManager.
        slots = 2 * base.flink.taskmanager_slots
        base = override(base, flink={"taskmanager_slots": slots})
        log(f"a lake job runs beside the measured one in {', '.join(sorted(LAKE_BESIDE & set(arms)))}: "
            f"the TaskManager has {slots} slots for every arm")
    results: list[tuple[str, int, dict[str, Any]]] = []
    try:
        up(base, progress=log)
        ensure_champion(base, say=log)
        for r in range(args.rounds):
            for arm in round_order(arms, r):
                log(f"round {r + 1}/{args.rounds}, arm {arm}")
                results.append((arm, r + 1, run_arm(base, arm, seed=100 + 10 * r + arms.index(arm), args=args)))
    finally:
        stop_own_stack(base, state)
    report(results, arms, args)
    return 0


def report(results: list[tuple[str, int, dict[str, Any]]], arms: list[str], args: argparse.Namespace) -> None:
    """One row per arm and round, then each arm's p99 against the baseline's in the same round."""
    target = p99_target(args.rate)
    print(f"\nserving latency, Kafka hand-over -> PostgreSQL score row, live event times, "
          f"{args.rate:,.0f} ev/s offered, {args.seconds:.0f}s per arm; target p99 < {target}s; baseline: {arms[0]}")
    print(f"{'arm':<20} {'round':>5} {'ev/s':>6} {'scored':>9} {'p50 s':>6} {'p99 s':>6} {'max s':>6}  "
          f"{'vs baseline p99':>15}  target")
    base_p99 = {r: lat["p99_s"] for arm, r, lat in results if arm == arms[0]}
    for arm, r, lat in results:
        ratio = lat["p99_s"] / base_p99[r] if base_p99.get(r) else float("nan")
        print(f"{arm:<20} {r:>5} {lat['rate']:>6,.0f} {lat['scored']:>4}/{lat['applications']:<4} "
              f"{lat['p50_s']:>6.2f} {lat['p99_s']:>6.2f} {lat['max_s']:>6.2f}  {ratio:>14.2f}x  "
              f"{'met' if lat['p99_s'] < target else 'NOT met'}")
    for arm, r, lat in results:
        phases = ", ".join(f"{s}s: p99 {p99:.2f} (n={n})" for s, n, _p50, p99 in lat["by_phase"])
        print(f"  {arm} round {r}, by seconds since the last checkpoint trigger: {phases}")


if __name__ == "__main__":
    sys.exit(main())
