"""Run by the Flink environment's Python (tests/unit/test_first_seen.py): the job's first_seen call over a CSV.

argv: the CSV (event_id, event time), the call's text with ``{table}`` for its input, and a JSON file to write.
Prints nothing; writes {"rows": [[event_id, seen_before], ...], "window_rows": N}: every row the call passed on,
and how many of its first arrivals a one-day tumbling window on the passed-through event_time counted
(the windows downstream need event_time to stay a time attribute).
"""

import json
import sys

from pyflink.table import EnvironmentSettings, TableEnvironment

csv, call, out = sys.argv[1], sys.argv[2], sys.argv[3]
t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
t_env.get_config().set("parallelism.default", "2")
t_env.execute_sql("CREATE TEMPORARY SYSTEM FUNCTION first_seen AS 'loanrisk.flink.FirstSeen' LANGUAGE JAVA")
t_env.execute_sql(f"""CREATE TEMPORARY TABLE src (event_id STRING, ts TIMESTAMP(3),
  event_time AS CAST(ts AS TIMESTAMP_LTZ(3)), WATERMARK FOR event_time AS event_time - INTERVAL '1' HOUR)
  WITH ('connector' = 'filesystem', 'path' = '{csv}', 'format' = 'csv')""")
t_env.execute_sql("CREATE TEMPORARY VIEW ids AS SELECT event_id, event_time FROM src")
t_env.execute_sql(f"CREATE TEMPORARY VIEW u AS SELECT event_id, seen_before, event_time FROM {call.format(table='ids')}")
with t_env.execute_sql("SELECT event_id, seen_before FROM u").collect() as rows:
    passed = [[r[0], r[1]] for r in rows]
windows = t_env.execute_sql("SELECT COUNT(*) AS n FROM TABLE(TUMBLE(TABLE u, DESCRIPTOR(event_time), INTERVAL '1' DAY)) "
                            "WHERE seen_before = 0 GROUP BY window_start, window_end")
with windows.collect() as rows:
    counts = [r[0] for r in rows]
with open(out, "w") as fh:
    json.dump({"rows": passed, "window_rows": sum(counts)}, fh)
