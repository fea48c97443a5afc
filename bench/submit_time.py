"""Benchmark: how long `flink run` of the risk job takes, with the stack's client JVM options against Flink's default.

Every submission plans the whole job in the client JVM (every statement of sql/, the statement set compiled to a
plan, the plan loaded and turned into a job graph), so this time is also what a JobManager crash costs before the
supervisor's resubmission reaches the cluster (stack/supervisor.py).

In one run, on its own stack (free ports, its own state folder, every process stopped by PID at the end):
1. the stack is started and a first champion registered;
2. each round submits the risk job once per arm, in an order that rotates per round, as `riskctl job submit`
   does (jobs/submit.py), and cancels it once it is submitted:
   - ``default``: Flink's client JVM as shipped (the JIT's C2 tier on);
   - ``product``: the stack's ``env.java.opts.client`` (stack/flink_conf.CLIENT_JVM_OPTS);
3. it prints each submission's wall time and the CPU time of the client's processes (the JVM and the Python
   driver), the median per arm, and the product against the default.

Run: ``.venv/bin/python bench/submit_time.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.job_throughput import log, own_stack_state, stop_own_stack
from bench.serving_latency import round_order
from loanrisk.settings import Settings

# Flink's config.sh reads env.java.opts.client only when this variable is unset; set, it replaces it.
CLIENT_OPTS_ENV = "FLINK_ENV_JAVA_OPTS_CLI"
# What the JVM does anyway, named so that the variable is set and the stack's value is not read.
ARMS = {"default": "-XX:+TieredCompilation", "product": None}


def children_cpu_s() -> float:
    """User and system CPU seconds of the finished child processes so far (the client JVM and its Python)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def submit_once(settings: Settings, arm: str, n: int) -> dict[str, Any]:
    """Submit the risk job with ``arm``'s client options, cancel it; its wall and client CPU seconds."""
    from jobs.submit import submit_risk_job
    from stack.flink_client import cancel
    saved = os.environ.get(CLIENT_OPTS_ENV)
    opts = ARMS[arm]
    if opts is None:
        os.environ.pop(CLIENT_OPTS_ENV, None)
    else:
        os.environ[CLIENT_OPTS_ENV] = opts
    try:
        cpu0, t0 = children_cpu_s(), time.perf_counter()
        job_id = submit_risk_job(settings, name=f"bench-submit-{arm}-{n}")
        wall, cpu = time.perf_counter() - t0, children_cpu_s() - cpu0
    finally:
        if saved is None:
            os.environ.pop(CLIENT_OPTS_ENV, None)
        else:
            os.environ[CLIENT_OPTS_ENV] = saved
    cancel(settings, job_id)
    return {"arm": arm, "wall_s": wall, "cpu_s": cpu, "job_id": job_id}


def report(rows: list[dict[str, Any]]) -> None:
    from stack.flink_conf import CLIENT_JVM_OPTS
    print("\nsubmissions (wall s / client CPU s):")
    for r in rows:
        print(f"  {r['arm']:8} {r['wall_s']:6.1f} s  {r['cpu_s']:6.1f} s  job {r['job_id'][:8]}")
    med = {arm: (statistics.median(r["wall_s"] for r in rows if r["arm"] == arm),
                 statistics.median(r["cpu_s"] for r in rows if r["arm"] == arm)) for arm in ARMS}
    print(f"\n{'arm':8} {'median wall':>12} {'median CPU':>11}  client JVM options")
    for arm, (wall, cpu) in med.items():
        opts = CLIENT_JVM_OPTS if ARMS[arm] is None else "Flink's default"
        print(f"{arm:8} {wall:10.1f} s {cpu:9.1f} s  {opts}")
    (dw, dc), (pw, pc) = med["default"], med["product"]
    print(f"\nbaseline: Flink's default client JVM. The product's submission takes {pw / dw:.2f} x its wall time "
          f"({dw - pw:.1f} s less) and {pc / dc:.2f} x its CPU.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/submit_time.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="Submissions per arm (default 3).")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    from models.first_champion import ensure_champion
    from stack.manager import up
    state = own_stack_state("submit")
    base = Settings()
    rows: list[dict[str, Any]] = []
    try:
        up(base, progress=log)
        ensure_champion(base, say=log)
        n = 0
        for round_no in range(args.rounds):
            for arm in round_order(list(ARMS), round_no):
                n += 1
                rows.append(submit_once(base, arm, n))
                log(f"round {round_no + 1}/{args.rounds}: {arm} submitted in {rows[-1]['wall_s']:.1f} s "
                    f"({rows[-1]['cpu_s']:.1f} s client CPU)")
                time.sleep(3)  # the cancelled job's tasks leave the TaskManager
    finally:
        stop_own_stack(base, state)
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
