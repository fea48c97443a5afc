"""Every parameter of the risk job, built once from the settings: SQL substitutions, Flink configuration,
the scorer UDF's parameters and each stateful operator's retention.

`riskctl job`, `riskctl sql`, the supervisor's resubmission (through the file written here), the benchmark
and the tests all take the job's parameters from this module, so a setting reaches the job one way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from contracts.flink_sql import scoring_fragments, sql_fragments
from jobs.shipping import shipping_conf
from jobs.sqlfiles import sql_string
from loanrisk.files import write_private
from loanrisk.settings import KafkaSettings, Settings, generated_secret
from stack.flink_conf import checkpoint_dir, savepoint_dir

RISK_JOB_NAME = "loan-risk"


def interval(seconds: int) -> str:
    """A Flink SQL day-to-second interval literal (no precision limits to trip over)."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{secs:02d}' DAY TO SECOND"


def kafka_security_options(kafka: KafkaSettings) -> str:
    """Kafka table options (``'properties.security.protocol' = 'SSL', ...``, each followed by a comma) or ''."""
    return "".join(f"'properties.{key}' = '{sql_string(value)}', "
                   for key, value in kafka.java_properties().items())


def sql_params(settings: Settings) -> dict[str, object]:
    """The ``${name}`` values every sql/ file may use, derived from the settings."""
    pg, s3, k, f = settings.postgres, settings.s3, settings.kafka, settings.flink
    keys = s3.credentials()
    # Values the sql/ files put inside quotes ('${name}'), escaped for a string literal; the others are
    # identifiers, numbers or SQL fragments rendered escaped where they are built.
    quoted = {
        "catalog_jdbc_url": pg.jdbc_url(pg.catalog_db),
        "catalog_jdbc_user": pg.user,
        "catalog_jdbc_password": pg.secret(),
        "serving_jdbc_url": pg.jdbc_url(pg.serving_db),
        "serving_jdbc_user": pg.user,
        "serving_jdbc_password": pg.secret(),
        "warehouse": settings.catalog.warehouse(s3),
        "s3_endpoint": s3.url,
        # Empty when no keys are configured: Iceberg's S3FileIO then takes the AWS SDK's default chain (it reads
        # an empty key, or an empty token, as unset).
        "s3_access_key_id": keys.access_key_id if keys else "",
        "s3_secret_access_key": keys.secret_access_key if keys else "",
        "s3_session_token": (keys.session_token or "") if keys else "",
        "s3_region": s3.region,
        "kafka_bootstrap": k.bootstrap,
        "consumer_group": f.consumer_group,
        "topic_applications": k.topics.applications,
        "topic_transactions": k.topics.transactions,
        "topic_repayments": k.topics.repayments,
        "topic_dead_letters": k.topics.dead_letters,
        "topic_alerts": k.topics.alerts,
    }
    return {
        "catalog_name": settings.catalog.name,
        "namespace": settings.catalog.namespace,
        **{name: sql_string(value) for name, value in quoted.items()},
        "kafka_security": kafka_security_options(k),
        "kafka_max_message_bytes": k.max_message_bytes,
        "window_minutes": f.window_minutes,
        "alert_threshold": settings.model.alert_threshold,
        "lgd": settings.model.lgd,
        "behaviour_window_days": f.behaviour_window_days,
        "behaviour_window_min": f.behaviour_window_days * 1440,
        "watermark_delay_s": f.watermark_delay_s,
        "watermark_delay": interval(f.watermark_delay_s),
        "source_idle_timeout": f"{f.source_idle_timeout_s} s",
        "serving_flush": f"{f.serving_flush_ms} ms",
        "risk_window": interval(f.window_minutes * 60),
        "behaviour_window": interval(f.behaviour_window_days * 86400),
        "behaviour_range": interval(2 * f.behaviour_window_days * 86400),
        "behaviour_range_days": 2 * f.behaviour_window_days,
        **sql_fragments(f.future_tolerance),
        **scoring_fragments(f.scorer),
    }


def pii_key_file(settings: Settings) -> Path:
    """The file the job's pseudonymising functions read the HMAC key from, on the TaskManagers.

    ``privacy.pii_hash_key_file`` as configured; else a file in the state folder holding the configured
    ``privacy.pii_hash_key``, or a random key generated on first use and kept (pseudonyms stay stable
    across runs of one installation). Only the path travels in the job's parameters, never the key.
    """
    p = settings.privacy
    if p.pii_hash_key_file is not None:
        p.key()  # unreadable: one clear ConfigError now, not a TaskManager failure later
        return p.pii_hash_key_file
    path = settings.state_dir / "secrets" / "pii-hash-key"
    configured = p.key()
    if configured is None:
        generated_secret(path)
        return path
    return write_private(path, configured)


def scorer_parameters(settings: Settings) -> dict[str, str]:
    """The champion scorer's parameters (udfs/scorer.py SCORER_PARAMETERS) from the settings: what the job's
    UDF reads from its job parameters and the scoring API builds its scorer from, so both score alike.

    Both read the registry as its readers (``s3.reader``): a key that cannot write, so whoever takes over a worker
    or the API can read the champion but not replace it; the trainer and promotion keep the read-write key.
    """
    m = settings.model
    readers = settings.s3.for_readers()
    params = {"model.registry_uri": m.registry(settings.s3), "model.poll_interval_s": m.poll_interval_s,
              "model.alert_threshold": m.alert_threshold, "model.max_model_bytes": m.max_model_bytes,
              "s3.endpoint": readers.url, "s3.region": readers.region}
    # No keys configured: none are passed, and the UDF takes the AWS SDK's default chain on its worker.
    keys = readers.credentials()
    if keys is not None:
        params.update({"s3.access_key_id": keys.access_key_id, "s3.secret_access_key": keys.secret_access_key})
        if keys.session_token:
            params["s3.session_token"] = keys.session_token
    return {k: str(v) for k, v in params.items()}


def udf_parameters(settings: Settings) -> dict[str, str]:
    """The job parameters its functions read in open(): the scorer UDF's (:func:`scorer_parameters`) and the
    pseudonymising Java functions' (jvm/functions Pseudonymizer), as the strings Flink passes on.

    The alert threshold is here and in :func:`sql_params`: the SQL flags a high score, the UDF explains it.
    """
    return {"pii.key_file": str(pii_key_file(settings)), "pii.key_id": settings.privacy.pii_key_id,
            **scorer_parameters(settings)}


def udf_job_parameters(settings: Settings) -> str:
    """:func:`udf_parameters` as a JSON map (Flink 2.1 accepts it; the k:v,k:v form breaks on URIs)."""
    return json.dumps(udf_parameters(settings))


def flink_conf(settings: Settings, name: str) -> dict[str, object]:
    """The risk job's Flink configuration from the settings (checkpointing, parallelism, Python bundles)."""
    f = settings.flink
    return {"pipeline.global-job-parameters": udf_job_parameters(settings),
            "execution.checkpointing.interval": f"{f.checkpoint_interval_ms} ms",
            # One folder per job name (Flink adds <job id>/chk-<n>): `riskctl job resume` and the supervisor
            # find every job id's checkpoints of this job there, and only this job's.
            "execution.checkpointing.dir": checkpoint_dir(settings, name),
            "execution.checkpointing.savepoint-dir": savepoint_dir(settings, name),
            "execution.checkpointing.mode": "EXACTLY_ONCE", "parallelism.default": f.parallelism,
            # Aligned on purpose: Iceberg's FlinkSink can lose data files on recovery from an unaligned
            # checkpoint (docs/RELIABILITY.md, Limits, with the upstream issue and the latency it costs).
            "execution.checkpointing.unaligned.enabled": "false",
            "python.fn-execution.arrow.batch.size": f.python_batch_size,
            # A bundle waits at most this long for more rows (Flink's default, 1 s, is on the latency path).
            "python.fn-execution.bundle.time": f.python_bundle_time_ms, "pipeline.name": name,
            # Iceberg's Flink writers read it from the job's configuration before the table's property.
            **({"distribution-mode": f.lake_distribution} if f.lake_distribution else {}),
            **shipping_conf(settings)}


def state_retention(settings: Settings) -> dict[str, int]:
    """Seconds of state per retention name of jobs/state_retention.py."""
    f = settings.flink
    return {"dedup": f.dedup_retention_s, "behaviour": f.behaviour_retention, "loan": f.loan_retention_s}


@dataclass(frozen=True)
class JobParams:
    """What jobs/run_sql.py reads from its ``--params`` file."""

    sql: dict[str, object]
    flink_conf: dict[str, object]
    state_retention: dict[str, int] | None = None

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"sql": self.sql, "flink_conf": self.flink_conf}
        if self.state_retention is not None:
            data["state_retention"] = self.state_retention
        return data

    def write(self, path: Path) -> Path:
        """Write the file (mode 0600: it holds credentials) and return its path."""
        return write_private(path, json.dumps(self.as_dict()))


def risk_job_params(settings: Settings, name: str = RISK_JOB_NAME, savepoint: str | None = None) -> JobParams:
    """Every parameter of the risk job named ``name``, started from ``savepoint`` if given."""
    conf = flink_conf(settings, name)
    if savepoint:
        # The same SQL compiles to the same operator ids, so the state maps back (settings may differ).
        conf["execution.state-recovery.path"] = savepoint
    return JobParams(sql_params(settings), conf, state_retention(settings))


def params_path(settings: Settings, name: str) -> Path:
    """Where the parameter file of the job named ``name`` lives (the supervisor resubmits with it)."""
    return settings.state_dir / "run" / f"params-{name}.json"


def write_params(settings: Settings, name: str, extra_sql: dict[str, object] | None = None,
                 flink_conf: dict[str, object] | None = None) -> Path:
    """The parameter file of a job over other sql/ folders (the smoke job): the SQL values plus ``extra_sql``."""
    params = JobParams({**sql_params(settings), **(extra_sql or {})}, flink_conf or {})
    return params.write(params_path(settings, name))
