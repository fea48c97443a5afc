"""Writes FLINK_HOME/conf/config.yaml from the settings: ports, memory, checkpoints, metrics, Python."""

from __future__ import annotations

from typing import Any

import yaml

from loanrisk.settings import Settings

# Newer AWS SDKs send checksum headers some S3-compatible servers reject.
AWS_JVM_OPTS = ("-Daws.requestChecksumCalculation=when_required -Daws.responseChecksumValidation=when_required "
                "-Duser.timezone=UTC")


def wheel_java_opts(settings: Settings) -> str:
    """The distribution's own JVM options (the --add-opens list Java 17 needs)."""
    from stack.setup import pyflink_dir
    conf = yaml.safe_load((pyflink_dir(settings) / "conf" / "config.yaml").read_text()) or {}
    return str(conf.get("env", {}).get("java", {}).get("opts", {}).get("all", ""))


def flink_config(settings: Settings) -> dict[str, Any]:
    """The cluster configuration as a dict (Flink 2.x standard YAML)."""
    f, state = settings.flink, settings.state_dir
    python = str(settings.flink_python)
    return {
        "jobmanager.rpc.address": "127.0.0.1",
        "jobmanager.rpc.port": f.jobmanager_rpc_port,
        "jobmanager.bind-host": "127.0.0.1",
        "jobmanager.memory.process.size": f.jobmanager_memory,
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
        "taskmanager.memory.process.size": f.taskmanager_memory,
        "taskmanager.numberOfTaskSlots": f.taskmanager_slots,
        # Heap for many open Iceberg writers (replays span many day partitions); managed memory
        # serves only the Python UDF workers here (no RocksDB).
        "taskmanager.memory.managed.fraction": f.taskmanager_managed_fraction,
        "parallelism.default": f.parallelism,
        "rest.address": "127.0.0.1",
        "rest.bind-address": "127.0.0.1",
        "rest.port": f.rest_port,
        "state.backend.type": "hashmap",
        # Size network buffers to ~1 s of throughput: under backpressure an aligned checkpoint barrier then
        # waits behind less queued data, and a multi-input task (the scorer's union of applications with
        # behaviour windows) is held for less time. p99 at 2,000 ev/s here: 11.5 s without, 4.5 s with;
        # a backlog drains slower (4,871 -> 3,574 events/s in one A/B): a setting, latency first.
        "taskmanager.network.memory.buffer-debloat.enabled": f.buffer_debloat,
        "execution.checkpointing.dir": f"file://{state / 'flink' / 'checkpoints'}",
        "execution.checkpointing.savepoint-dir": f"file://{state / 'flink' / 'savepoints'}",
        "execution.checkpointing.num-retained": 2,
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": f.restart_attempts,
        "restart-strategy.fixed-delay.delay": f"{f.restart_delay_ms} ms",
        # A loaded 2-core machine: give RPCs time rather than fail over on a slow deploy.
        "pekko.ask.timeout": "30 s",
        "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        "metrics.reporter.prom.port": f.prometheus_ports,
        "metrics.latency.interval": 0,
        # Expose only what the dashboards, alert rules and tests read: unfiltered, the TaskManager
        # served ~8,500 series (4 MB, 2.7 s to render) per 5 s scrape, over half a core of a 2-core machine.
        "metrics.reporter.prom.filter.includes": list(PROMETHEUS_INCLUDES),
        "metrics.reporter.prom.scope.variables.excludes":
            "task_attempt_id;task_attempt_num;tm_id;host;task_id;operator_id",
        "python.executable": python,
        "python.client.executable": python,
        "env.java.opts.all": f"{wheel_java_opts(settings)} {AWS_JVM_OPTS}".strip(),
        "jobmanager.execution.failover-strategy": "region",
        "env.log.dir": str(state / "logs" / "flink"),
        "env.pid.dir": str(state / "run"),
        "web.submit.enable": True,
        "web.cancel.enable": True,
    }


# Flink metric filters, ``<scope>[:<name>[,<name>]]`` (`*` is a wildcard): every JobManager metric; task
# busy/back-pressure time; per operator the record counts, source backlog and event-time lag, the
# scorer UDF's own metrics, the Iceberg committer's and the window operators' late drops.
PROMETHEUS_INCLUDES = (
    "jobmanager*",
    "*.job.task:busyTimeMsPerSecond,backPressuredTimeMsPerSecond,idleTimeMsPerSecond",
    "*.job.task.operator*:numRecordsIn,numRecordsOut,pendingRecords,currentEmitEventTimeLag,model_*,score*,"
    "registry_poll_failures,committedDataFilesCount,elapsedSecondsSinceLastSuccessfulCommit,numLateRecordsDropped",
)


def write_flink_config(settings: Settings) -> None:
    """Write this stack's FLINK_CONF_DIR: config.yaml plus the distribution's log4j files."""
    import shutil

    from stack.setup import pyflink_dir
    conf = settings.flink_conf_dir
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "config.yaml").write_text(yaml.safe_dump(flink_config(settings), sort_keys=True))
    for name in ("log4j.properties", "log4j-cli.properties", "log4j-console.properties",
                 "log4j-session.properties", "logback.xml"):
        src = pyflink_dir(settings) / "conf" / name
        if src.exists():
            shutil.copy(src, conf / name)
    (settings.state_dir / "logs" / "flink").mkdir(parents=True, exist_ok=True)


def flink_env(settings: Settings) -> dict[str, str]:
    """Environment for Flink's bin/ scripts."""
    from stack.java import java_home
    return {"FLINK_HOME": str(settings.flink_home), "FLINK_CONF_DIR": str(settings.flink_conf_dir),
            "FLINK_LOG_DIR": str(settings.state_dir / "logs" / "flink"), "JAVA_HOME": str(java_home()),
            "PYFLINK_CLIENT_EXECUTABLE": str(settings.flink_python)}
