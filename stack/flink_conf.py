"""Writes FLINK_HOME/conf/config.yaml from the settings: ports, memory, checkpoints, metrics, Python."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from loanrisk.settings import Settings

# Newer AWS SDKs send checksum headers some S3-compatible servers reject. The S3 file system plugin's
# SDK v1 prints a deprecation notice with a stack trace into every process log unless told not to.
AWS_JVM_OPTS = ("-Daws.requestChecksumCalculation=when_required -Daws.responseChecksumValidation=when_required "
                "-Daws.java.v1.disableDeprecationAnnouncement=true -Duser.timezone=UTC")


# The client JVM (`flink run`, the SQL client) lives for one planning of the job: JIT tiers past C1 only compete
# with the planner for the cores in that time. It plans every submission, including the supervisor's resume after
# a JobManager crash, so this is recovery time too (bench/submit_time.py: figures in docs/PERFORMANCE.md).
CLIENT_JVM_OPTS = "-XX:TieredStopAtLevel=1"


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
        # behaviour windows) is held for less time. It costs drain throughput, so it is a setting, latency
        # first (figures: docs/PERFORMANCE.md).
        "taskmanager.network.memory.buffer-debloat.enabled": f.buffer_debloat,
        # Durable checkpoints: kept when a job is cancelled or its JobManager dies, so `riskctl job resume`
        # (and the supervisor after a JobManager crash) can restore the job's state. Three retained: resume
        # takes the latest (an older one would replay alerts already sent); two stay to fall back on by hand.
        "execution.checkpointing.dir": checkpoint_dir(settings),
        "execution.checkpointing.savepoint-dir": savepoint_dir(settings),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": 3,
        **s3_filesystem_options(settings),
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": f.restart_attempts,
        "restart-strategy.fixed-delay.delay": f"{f.restart_delay_ms} ms",
        # A loaded small machine: give RPCs time rather than fail over on a slow deploy.
        "pekko.ask.timeout": "30 s",
        "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        "metrics.reporter.prom.port": f.prometheus_ports,
        "metrics.latency.interval": 0,
        # The REST API's metric values are at most this old (Flink's default is 10 s): the benchmarks and
        # tests time drains by them. The JobManager fetches them only while someone reads them.
        "metrics.fetcher.update-interval": 1000,
        # Expose only what the dashboards, alert rules and tests read: rendering every series on each
        # scrape costs the TaskManager a large share of a core (docs/PERFORMANCE.md).
        "metrics.reporter.prom.filter.includes": list(PROMETHEUS_INCLUDES),
        "metrics.reporter.prom.scope.variables.excludes":
            "task_attempt_id;task_attempt_num;tm_id;host;task_id;operator_id",
        "python.executable": python,
        "python.client.executable": python,
        "env.java.opts.all": f"{wheel_java_opts(settings)} {AWS_JVM_OPTS}".strip(),
        "env.java.opts.client": CLIENT_JVM_OPTS,
        "jobmanager.execution.failover-strategy": "region",
        "env.log.dir": str(state / "logs" / "flink"),
        "env.pid.dir": str(state / "run"),
        "rest.flamegraph.enabled": f.flamegraph,
        # 10 s of samples per graph (Flink's default, 100 samples 50 ms apart, catches few on-CPU frames).
        "rest.flamegraph.num-samples": 400,
        "rest.flamegraph.delay-between-samples": "25 ms",
        "web.submit.enable": True,
        "web.cancel.enable": True,
    }


def state_root(settings: Settings) -> str:
    """Where checkpoints and savepoints live: the lake's bucket, or this stack's state folder."""
    f = settings.flink
    if f.checkpoint_storage == "local":
        return f"file://{settings.state_dir / 'flink'}"
    return f"s3://{settings.s3.bucket}/{f.checkpoint_prefix.strip('/')}"


def checkpoint_dir(settings: Settings, job_name: str | None = None) -> str:
    """The checkpoint folder of the cluster, or of the jobs called ``job_name`` (Flink adds <job id>/chk-<n>)."""
    return f"{state_root(settings)}/checkpoints" + (f"/{job_name}" if job_name else "")


def savepoint_dir(settings: Settings, job_name: str | None = None) -> str:
    """The savepoint folder of the cluster, or of the jobs called ``job_name``."""
    return f"{state_root(settings)}/savepoints" + (f"/{job_name}" if job_name else "")


def s3_filesystem_options(settings: Settings) -> dict[str, object]:
    """Flink's S3 file system (plugins/s3-fs-hadoop) on the settings' endpoint; empty for local storage.

    Flink hands ``s3.*`` to Hadoop's S3A as ``fs.s3a.*``. s3proxy serves path-style requests only. The
    plugin bundles AWS SDK v1, which does not send the newer checksum headers (AWS_JVM_OPTS is for v2).
    Configured keys are the only credentials (with a session token, S3A's temporary-credentials provider):
    S3A's own default chain would otherwise go on to the cloud instance-metadata address. With no keys, the
    SDK's default chain, as every other client takes it: S3A's own list lacks the shared profile and web
    identity (pod roles). Flink masks the secret and the token in its logs and REST API (their keys contain
    "secret" and "token").
    """
    if settings.flink.checkpoint_storage != "s3":
        return {}
    s3 = settings.s3
    options: dict[str, object] = {"s3.endpoint": s3.url, "s3.endpoint.region": s3.region,
                                  "s3.path.style.access": s3.path_style}
    keys = s3.credentials()
    if keys is None:
        options["s3.aws.credentials.provider"] = "com.amazonaws.auth.DefaultAWSCredentialsProviderChain"
    elif keys.session_token:
        options.update({"s3.access-key": keys.access_key_id, "s3.secret-key": keys.secret_access_key,
                        "s3.session.token": keys.session_token,
                        "s3.aws.credentials.provider": "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"})
    else:
        options.update({"s3.access-key": keys.access_key_id, "s3.secret-key": keys.secret_access_key,
                        "s3.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"})
    return options


# Flink metric filters, ``<scope>[:<name>[,<name>]]`` (`*` is a wildcard): every JobManager metric; task
# busy/back-pressure time; per operator the record counts, source backlog and event-time lag, the
# scorer UDF's own metrics, the Iceberg committer's and the window operators' late drops.
PROMETHEUS_INCLUDES = (
    "jobmanager*",
    "*.job.task:busyTimeMsPerSecond,backPressuredTimeMsPerSecond,idleTimeMsPerSecond",
    "*.job.task.operator*:numRecordsIn,numRecordsOut,pendingRecords,currentEmitEventTimeLag,model_*,score*,"
    "challenger_load_failures,registry_poll_failures,committedDataFilesCount,elapsedSecondsSinceLastSuccessfulCommit,"
    "numLateRecordsDropped",
)


def write_flink_config(settings: Settings) -> None:
    """Write this stack's FLINK_CONF_DIR: config.yaml plus the distribution's log4j files."""
    import shutil

    from stack.setup import pyflink_dir
    conf = settings.flink_conf_dir
    conf.mkdir(parents=True, exist_ok=True)
    # Mode 0600: it holds the object store's secret key.
    fd = os.open(conf / "config.yaml", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(yaml.safe_dump(flink_config(settings), sort_keys=True))
    (conf / "config.yaml").chmod(0o600)
    for name in ("log4j.properties", "log4j-cli.properties", "log4j-console.properties",
                 "log4j-session.properties", "logback.xml"):
        src = pyflink_dir(settings) / "conf" / name
        if src.exists():
            shutil.copy(src, conf / name)
    (settings.state_dir / "logs" / "flink").mkdir(parents=True, exist_ok=True)


def flink_env(settings: Settings, home: Path | None = None) -> dict[str, str]:
    """Environment for Flink's bin/ scripts: the client's FLINK_HOME, or ``home`` (the cluster's)."""
    from stack.java import java_home
    return {"FLINK_HOME": str(home or settings.flink_home), "FLINK_CONF_DIR": str(settings.flink_conf_dir),
            "FLINK_LOG_DIR": str(settings.state_dir / "logs" / "flink"), "JAVA_HOME": str(java_home()),
            "PYFLINK_CLIENT_EXECUTABLE": str(settings.flink_python)}
