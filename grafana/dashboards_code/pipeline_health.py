"""The "Pipeline health" dashboard: the Flink job, Kafka consumer lag, dead letters, scoring and Iceberg, from Prometheus.

Metric names are those Flink 2.1's Prometheus reporter exports (``flink_<scope>_<metric>``, job name
``loan-risk`` becomes the label ``job_name="loan_risk"``), the scoring UDF's own metrics (registered in
udfs/flink_udf.py, exported under the PythonCalc operator) and ``loanrisk_kafka_*`` from stack/lag_exporter.py.
Operator and task labels reach the legends through grafana/flink_names.py, never as Flink's generated names.
Every panel has a unit and starts at 0 (counts, rates, lags and durations are never negative); shares
run from 0 to 100 %.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb, dashboard as dash, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import Dashboard, VariableOption, VariableRefresh

from grafana.flink_names import (SINK_OPERATORS, SINK_RULES, SOURCE_OPERATORS, SOURCE_RULES, TASK_RULES,
                                  relabel)
from grafana.panels import PROMETHEUS, Ids, prom, steps
from loanrisk.settings import Settings

UID = "loanrisk-pipeline"
OP = "flink_taskmanager_job_task_operator"
JOB = 'job_name="$job"'
DEAD_LETTERS = f'sum(rate({OP}_numRecordsIn{{{JOB}, operator_name=~"dead_letter_topic.*Writer"}}[$__rate_interval]))'
SOURCE_RECORDS = f'sum(rate({OP}_numRecordsOut{{{JOB}, operator_name=~"Source:.*"}}[$__rate_interval]))'
# Per Kafka source, per sink and per task, labelled with the names of grafana/flink_names.py.
SOURCES_OUT = relabel(f'rate({OP}_numRecordsOut{{{JOB}, operator_name=~"{SOURCE_OPERATORS}"}}[$__rate_interval])',
                      "source", "operator_name", SOURCE_RULES)
SINKS_IN = relabel(f'rate({OP}_numRecordsIn{{{JOB}, operator_name=~"{SINK_OPERATORS}"}}[$__rate_interval])',
                   "sink", "operator_name", SINK_RULES)
PENDING = relabel(f'{OP}_pendingRecords{{{JOB}, operator_name=~"{SOURCE_OPERATORS}"}}', "source", "operator_name",
                  SOURCE_RULES)
BACKPRESSURE = relabel(f"max by (task_name) (flink_taskmanager_job_task_backPressuredTimeMsPerSecond{{{JOB}}})",
                       "task", "task_name", TASK_RULES)


def _stat(ids: Ids, title: str, expr: str, unit: str, thresholds: dash.ThresholdsConfig,
          decimals: int | None = None) -> stat.Panel:
    panel = (stat.Panel().id(ids()).title(title).datasource(PROMETHEUS).with_target(prom(expr))
             .unit(unit).min(0).thresholds(thresholds).height(4).span(4)
             .color_mode(common.BigValueColorMode.VALUE).reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"])))
    return panel if decimals is None else panel.decimals(decimals)


def _series(ids: Ids, title: str, unit: str, description: str, *targets, decimals: int | None = None) -> timeseries.Panel:
    panel = (timeseries.Panel().id(ids()).title(title).description(description).datasource(PROMETHEUS)
             .unit(unit).min(0).height(8).span(12).fill_opacity(10))
    if unit == "percentunit":
        panel = panel.max(1)
    if decimals is not None:
        panel = panel.decimals(decimals)
    for t in targets:
        panel = panel.with_target(t)
    return panel


def build(settings: Settings) -> Dashboard:
    """The dashboard model."""
    ids = Ids()
    d = (dash.Dashboard("Pipeline health").uid(UID).tags(["loan-risk", "flink", "kafka"]).refresh("30s")
         .time("now-1h", "now").timezone("utc").readonly()
         .description("The Flink risk job, its Kafka backlog, dead letters, scoring and Iceberg commits.")
         .with_variable(dash.QueryVariable("job").label("Flink job").datasource(PROMETHEUS)
                        .query("label_values(flink_jobmanager_job_uptime, job_name)")
                        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                        .current(VariableOption(selected=True, text="loan_risk", value="loan_risk"))))
    d = (d.with_row(dash.Row("Job").id(ids()))
         .with_panel(_stat(ids, "Job uptime", f"max(flink_jobmanager_job_uptime{{{JOB}}}) / 1000", "dtdurations",
                           steps((None, "red"), (60, "orange"), (600, "green")), decimals=1))
         .with_panel(_stat(ids, "Restarts", f"max(flink_jobmanager_job_numRestarts{{{JOB}}})", "short",
                           steps((None, "green"), (1, "orange"), (5, "red")), decimals=0))
         .with_panel(_stat(ids, "Failed checkpoints", f"max(flink_jobmanager_job_numberOfFailedCheckpoints{{{JOB}}})",
                           "short", steps((None, "green"), (1, "orange"), (3, "red")), decimals=0))
         .with_panel(_stat(ids, "Consumer lag", "sum(loanrisk_kafka_consumer_lag)", "short",
                           steps((None, "green"), (10_000, "orange"), (100_000, "red"))))
         .with_panel(_stat(ids, "Model load failures", f"sum({OP}_model_load_failures{{{JOB}}})", "short",
                           steps((None, "green"), (1, "red")), decimals=0))
         .with_panel(_stat(ids, "Model version", f"max({OP}_model_version_number{{{JOB}}})", "none",
                           steps((None, "blue")), decimals=0)))
    d = (d.with_row(dash.Row("Throughput and checkpoints").id(ids()))
         .with_panel(_series(ids, "Records read per second, by Kafka source", "rps",
                             "Records each Kafka source table emits into the job (what it reads from its topic).",
                             prom(f"sum by (source) ({SOURCES_OUT})", "{{source}}")))
         .with_panel(_series(ids, "Records written per second, by sink", "wps",
                             "Records each sink receives: PostgreSQL serving tables, Kafka topics, and the Iceberg "
                             "writers of all lake tables together (Flink names them alike).",
                             prom(f"sum by (sink) ({SINKS_IN})", "{{sink}}")))
         .with_panel(_series(ids, "Checkpoint duration", "ms", "Duration of the last completed checkpoint.",
                             prom(f"max(flink_jobmanager_job_lastCheckpointDuration{{{JOB}}})", "last checkpoint"))
                     .thresholds(steps((None, "green"), (30_000, "orange"), (60_000, "red"))))
         .with_panel(_series(ids, "Checkpoints completed and failed (5 min)", "short",
                             "Checkpoints per 5 minutes; Iceberg commits only on completed checkpoints.",
                             prom(f"sum(increase(flink_jobmanager_job_numberOfCompletedCheckpoints{{{JOB}}}[5m]))",
                                  "completed"),
                             prom(f"sum(increase(flink_jobmanager_job_numberOfFailedCheckpoints{{{JOB}}}[5m]))",
                                  "failed", ref_id="B"), decimals=0))
         .with_panel(_series(ids, "Backpressure, by task", "percentunit",
                             "Share of time the five most back-pressured tasks spent back-pressured.",
                             prom(f"topk(5, {BACKPRESSURE}) / 1000", "{{task}}"))
                     .thresholds(steps((None, "green"), (0.5, "orange"), (0.8, "red"))))
         .with_panel(_series(ids, "Restarts and running jobs", "short", "Job restarts since submission; running jobs.",
                             prom(f"max(flink_jobmanager_job_numRestarts{{{JOB}}})", "restarts"),
                             prom("max(flink_jobmanager_numRunningJobs)", "running jobs", ref_id="B"), decimals=0)))
    d = (d.with_row(dash.Row("Kafka, dead letters, scoring, Iceberg").id(ids()))
         .with_panel(_series(ids, "Kafka consumer lag, by topic", "short",
                             "Records not committed by the job's consumer group (exporter), and records the "
                             "job's sources still see ahead of them (Flink pendingRecords).",
                             prom("sum by (topic) (loanrisk_kafka_consumer_lag)", "committed lag {{topic}}"),
                             prom(f"sum by (source) ({PENDING})", "pending {{source}}", ref_id="B"))
                     .thresholds(steps((None, "green"), (10_000, "orange"), (100_000, "red"))))
         .with_panel(_series(ids, "Oldest unread record, share of the topic's retention", "percentunit",
                             "Age of the oldest record the job has not committed, over the topic's retention: at "
                             "100 % the broker deletes it unread (alert at 50 %).",
                             prom("max by (topic) (loanrisk_kafka_oldest_unread_age_seconds) / on (topic) "
                                  "max by (topic) (loanrisk_kafka_retention_seconds)", "{{topic}}"))
                     .thresholds(steps((None, "green"), (0.25, "orange"), (0.5, "red"))))
         .with_panel(_series(ids, "Dead letters per second", "wps",
                             "Invalid events the job routed to the dead-letter topic, and their share of input.",
                             prom(DEAD_LETTERS, "dead letters/s"))
                     .thresholds(steps((None, "green"), (1, "orange"), (10, "red"))))
         .with_panel(_series(ids, "Dead-letter share of input", "percentunit",
                             "Dead letters over records read from Kafka (alert above 5 %).",
                             prom(f"{DEAD_LETTERS} / {SOURCE_RECORDS}", "dead-letter share"))
                     .thresholds(steps((None, "green"), (0.05, "red"))))
         .with_panel(_series(ids, "Scoring latency", "µs",
                             "ONNX scoring time in the UDF: per row and per call (a pandas batch).",
                             prom(f"sum(rate({OP}_score_latency_us{{{JOB}}}[$__rate_interval])) / "
                                  f"sum(rate({OP}_scored_rows{{{JOB}}}[$__rate_interval]))", "per row"),
                             prom(f"sum(rate({OP}_score_latency_us{{{JOB}}}[$__rate_interval])) / "
                                  f"sum(rate({OP}_score_calls{{{JOB}}}[$__rate_interval]))", "per call", ref_id="B")))
         .with_panel(_series(ids, "Iceberg data files committed (5 min), by table", "short",
                             "Files each Iceberg committer added per 5 minutes.",
                             prom(f"sum by (table) (increase({OP}_IcebergFilesCommitter_table_committedDataFilesCount"
                                  f"{{{JOB}}}[5m]))", "{{table}}"), decimals=0))
         .with_panel(_series(ids, "Seconds since the last Iceberg commit, by table", "s",
                             "Grows between checkpoints; a steady climb means commits stopped.",
                             prom(f"max by (table) ({OP}_IcebergFilesCommitter_table_elapsedSecondsSinceLastSuccessful"
                                  f"Commit{{{JOB}}})", "{{table}}"))
                     .thresholds(steps((None, "green"), (120, "orange"), (600, "red"))))
         .with_panel(_series(ids, "Model load and registry poll failures", "short",
                             "Champions and shadow challengers the UDF could not load, and failed reads of the "
                             "registry pointer.",
                             prom(f"sum({OP}_model_load_failures{{{JOB}}})", "model load failures"),
                             prom(f"sum({OP}_challenger_load_failures{{{JOB}}})", "challenger load failures",
                                  ref_id="C"),
                             prom(f"sum({OP}_registry_poll_failures{{{JOB}}})", "registry poll failures", ref_id="B"),
                             decimals=0)
                     .thresholds(steps((None, "green"), (1, "red"))))
         .with_panel(_series(ids, "Rows scored per second", "rps", "Rows scored by the ONNX UDF.",
                             prom(f"sum(rate({OP}_scored_rows{{{JOB}}}[$__rate_interval]))", "rows/s"))))
    return d.build()
