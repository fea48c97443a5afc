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
- ``serving-only-long``: both.

For each: a fresh job on the topics (one consumer group, so it starts where the previous arm's job stopped),
its first completed checkpoint awaited, then new events timed as they are sent for ``--seconds``; latency per
application = PostgreSQL ``loan_scores_latest.written_at`` minus its hand-over to Kafka (bench/job_throughput.py
``latency``). Each arm sends its own generated stream (a seed per arm and round), so no arm sees another's rows.

Run: ``.venv/bin/python bench/serving_latency.py [--rate 200] [--seconds 120] [--rounds 2] [--arms a,b]``.
Target (docs/PERFORMANCE.md): p99 < 0.5 s at 200 events/s, < 1 s at 2,000.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.job_throughput import LONG_WAITS, fresh_job_latency, inserts_without, log, p99_target, settings_for
from contracts.tables import LAKE_TABLES as LAKE
from loanrisk.settings import REPO_ROOT, Settings, override

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
}


def run_arm(base: Settings, arm: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One arm: submit, wait for the first checkpoint, measure, cancel."""
    flink, without = ARMS[arm]
    return fresh_job_latency(override(settings_for(base, "onnx"), flink=flink), f"bench-{arm}",
                             inserts_without(base, list(without)) if without else (), args, seed=seed,
                             cancel_after=True)


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
    from stack import isolated
    from stack.manager import down, up
    install = Path(os.environ.get("LOANRISK_STACK__INSTALL_DIR", REPO_ROOT / ".loanrisk")).resolve()
    state = install / "bench-stacks" / f"run-{os.getpid()}"
    os.environ.update(isolated.isolated_stack_env(state, install, seed=os.getpid()))
    base = Settings()
    results: list[tuple[str, int, dict[str, Any]]] = []
    try:
        up(base, progress=log)
        ensure_champion(base, say=log)
        for r in range(args.rounds):
            for i, arm in enumerate(arms):
                log(f"round {r + 1}/{args.rounds}, arm {arm}")
                results.append((arm, r + 1, run_arm(base, arm, seed=100 + 10 * r + i, args=args)))
    finally:
        down(base, progress=log)
        shutil.rmtree(state, ignore_errors=True)
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
