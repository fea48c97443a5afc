"""Generic PyFlink entry point: runs one sql/ folder as a job (DDL first, all INSERTs as one statement set).

    flink run -py jobs/run_sql.py -pyfs jobs -- --sql-dir sql/smoke --params params.json [--wait]
        [--only-into 'raw_*' ...]   (submit only the INSERTs into matching tables: bench/job_throughput's floor)

When the parameters carry ``state_retention`` (seconds per retention name), the statement set is compiled
to a plan, each stateful operator gets its own retention (jobs/state_retention.py), and that plan runs;
``--plan-out`` keeps a copy of it (mode 0600: table options in it hold credentials).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pyflink.java_gateway import get_gateway
from pyflink.table import EnvironmentSettings, TableEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from jobs.sqlfiles import load
from jobs.state_retention import apply_retention


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the statements, and optionally wait for a bounded job to finish."""
    parser = argparse.ArgumentParser(prog="run_sql")
    parser.add_argument("--sql-dir", required=True, type=Path, action="append", help="repeatable, loaded in order")
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--wait", action="store_true", help="block until the job finishes (bounded jobs)")
    parser.add_argument("--name", default=None)
    parser.add_argument("--only-into", action="append", default=[], metavar="GLOB",
                        help="repeatable: submit only the INSERTs whose target table name matches")
    parser.add_argument("--plan-out", type=Path, default=None, help="write the compiled plan the job runs")
    args = parser.parse_args(argv)
    params = json.loads(args.params.read_text())
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    for key, value in params.get("flink_conf", {}).items():
        conf.set(key, str(value))
    if args.name:
        conf.set("pipeline.name", args.name)
    statement_set = t_env.create_statement_set()
    inserts = 0
    stmts = [s for folder in args.sql_dir for s in load(folder, params["sql"])]
    for stmt in stmts:
        if stmt.set_pair:
            conf.set(*stmt.set_pair)  # the SQL client runs SET itself; the Table API takes it as config
        elif stmt.is_insert:
            if not stmt.inserts_into(args.only_into):
                continue
            statement_set.add_insert_sql(stmt.text)
            inserts += 1
        else:
            t_env.execute_sql(stmt.text)
    if not inserts:
        only = f" into {', '.join(args.only_into)}" if args.only_into else ""
        print(f"no INSERT statements{only} in {', '.join(map(str, args.sql_dir))}", file=sys.stderr)
        return 2
    if "state_retention" not in params:
        result = statement_set.execute()
        print(f"submitted job {result.get_job_client().get_job_id()}", flush=True)
        if args.wait:
            result.wait()
        return 0
    plan = json.loads(statement_set._j_statement_set.compilePlan().asJsonString())
    for row in apply_retention(plan, params["state_retention"]):
        print(f"state retention: node {row['node']} {row['holds']} {row['ttl']}", flush=True)
    text = json.dumps(plan)
    if args.plan_out:
        fd = os.open(args.plan_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    gateway = get_gateway()
    j_result = t_env._j_tenv.loadPlan(gateway.jvm.org.apache.flink.table.api.PlanReference.fromJsonString(text)) \
        .execute()
    print(f"submitted job {j_result.getJobClient().get().getJobID().toString()}", flush=True)
    if args.wait:
        getattr(j_result, "await")()  # a Python keyword, so not j_result.await()
    return 0


if __name__ == "__main__":
    sys.exit(main())
