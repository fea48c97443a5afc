"""The Spark Structured Streaming peer of the Flink job's floor; runs in the Spark peer's environment (pyspark).

Started by bench/spark_peer.py with a JSON configuration file (``run CONFIG``): Kafka (the three input topics,
read_committed) -> the contracts' validation as Spark SQL (contracts/spark_sql.py) -> de-duplication by event id
-> the three raw Iceberg tables and the dead letters (lake table and topic), in the lake's JDBC catalog and a
namespace of its own. It prints one JSON line per event on stdout: ``ready`` once the query waits for data,
``progress`` after every micro-batch (its rows and durations), ``stopped`` with the tables' row counts after the
stop file appears. ``check`` reads JSON lines of messages on stdin and prints each one's reason, typed event id
and pseudonyms, for tests/unit/test_spark_sql.py.

It imports pyspark and the stdlib-only contracts/ only: the platform environment never loads it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.events import INPUT_EVENTS
from contracts.spark_sql import (
    SPARK_CONF,
    checked_columns,
    create_table,
    dead_letter_select,
    decoded_payload,
    masked_payload,
    not_heartbeat,
    parsed_document,
    pseudonym,
    raw_fields,
    raw_select,
    raw_table_of,
    typed_fields,
)
from contracts.tables import DEAD_LETTERS

# Written into each Iceberg snapshot's summary: the query id and batch id that committed it, so a batch run again
# after a restart appends nothing a table already has.
BATCH_PROPERTY = "loanrisk.spark-peer.batch"
MAX_KEY_BYTES = 4096


def say(event: str, **fields: Any) -> None:
    """One JSON line on stdout for the benchmark."""
    print(json.dumps({"event": event, "at": time.time(), **fields}), flush=True)


def read_key(path: str) -> bytes:
    """The PII key as the Flink functions read it (jvm/functions Pseudonymizer.readKey): trailing whitespace cut."""
    raw = Path(path).read_bytes()
    if len(raw) > MAX_KEY_BYTES:
        raise SystemExit(f"the PII key file {path} is larger than {MAX_KEY_BYTES} bytes")
    key = raw.rstrip(b" \t\n\r\x0b\x0c")
    if not key:
        raise SystemExit(f"the PII key file {path} is empty")
    return key


def session(conf: dict[str, Any]) -> Any:
    """The local Spark session: the pinned jars, the lake's JDBC catalog under its own name, S3FileIO."""
    from pyspark.sql import SparkSession
    cat, s3 = conf["catalog"], conf["s3"]
    prefix = f"spark.sql.catalog.{cat['name']}"
    options = {
        "spark.master": conf["master"], "spark.jars": ",".join(conf["jars"]),
        "spark.driver.memory": conf["driver_memory"],
        "spark.driver.extraJavaOptions": " ".join(conf["java_options"]),
        "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": str(conf["shuffle_partitions"]),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.local.dir": conf["local_dir"],
        **SPARK_CONF,
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
        f"{prefix}.uri": cat["jdbc_url"], f"{prefix}.jdbc.user": cat["jdbc_user"],
        f"{prefix}.jdbc.password": cat["jdbc_password"], f"{prefix}.jdbc.schema-version": "V1",
        f"{prefix}.warehouse": cat["warehouse"], f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{prefix}.s3.endpoint": s3["endpoint"], f"{prefix}.s3.path-style-access": "true",
        f"{prefix}.s3.access-key-id": s3["access_key_id"], f"{prefix}.s3.secret-access-key": s3["secret_access_key"],
        f"{prefix}.client.region": s3["region"],
        # Each session (the streaming query runs in a clone) would otherwise keep its own cached table objects:
        # the restart check and the final counts must see the commits the query's session made.
        f"{prefix}.cache-enabled": "false",
    }
    builder = SparkSession.builder.appName("loanrisk-spark-peer")
    for key, value in options.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def checked(frame: Any, topics: dict[str, str], tolerance_ms: int) -> Any:
    """Messages (topic, partition, offset, ingested_at, value) -> reason, event id and time, a struct per contract.

    Four projections, so each field's Variant is read once and its JSON type and typed value once: Spark keeps
    adjacent projections apart when merging them would compute a costly expression twice."""
    frame = frame.selectExpr("topic", "partition", "offset", "ingested_at", f"{decoded_payload('value')} AS payload")
    frame = frame.where(not_heartbeat("payload"))
    frame = frame.selectExpr("*", f"{parsed_document()} AS doc")
    frame = frame.selectExpr("topic", "partition", "offset", "ingested_at", "payload", "doc", *raw_fields(topics))
    frame = frame.selectExpr("topic", "partition", "offset", "ingested_at", "payload", "doc", *typed_fields())
    return frame.selectExpr("topic", "partition", "offset", "ingested_at", "payload",
                            *checked_columns(topics, tolerance_ms))


def kafka_options(conf: dict[str, Any]) -> dict[str, str]:
    """The Kafka client's options for Spark's source and sink (``kafka.`` prefixed)."""
    k = conf["kafka"]
    return {"kafka.bootstrap.servers": k["bootstrap"], **{f"kafka.{key}": v for key, v in k["properties"].items()}}


def committed_batches(spark: Any, table: str, tag: str) -> bool:
    """Whether a snapshot of ``table`` carries this batch's tag (it was committed before a restart)."""
    rows = spark.sql(f"SELECT count(*) AS n FROM {table}.snapshots WHERE summary['{BATCH_PROPERTY}'] = '{tag}'").collect()
    return bool(rows[0]["n"])


def run(conf: dict[str, Any]) -> int:
    """Warm up (optional), start the measured query, report its batches, stop when the stop file appears."""
    spark = session(conf)
    cat = conf["catalog"]["name"]
    key = read_key(conf["pii"]["key_file"])
    key_id = conf["pii"]["key_id"]
    if conf.get("warmup"):
        warm = conf["warmup"]
        query = start(spark, conf, warm, key, key_id)
        deadline = time.time() + warm["seconds"]
        while time.time() < deadline and query.isActive:
            time.sleep(0.5)
        query.stop()
        say("warmed", seconds=warm["seconds"], batches=len(query.recentProgress))
    main = conf["run"]
    query = start(spark, conf, main, key, key_id)
    while query.isActive and "Waiting for data" not in str(query.status.get("message", "")):
        time.sleep(0.2)
    say("ready", status=query.status)
    stop = Path(conf["stop_file"])
    seen = -1
    while not stop.exists():
        if not query.isActive:
            say("failed", error=str(query.exception()))
            return 1
        progress = query.lastProgress
        if progress and progress["batchId"] > seen:
            for p in query.recentProgress:
                if p["batchId"] > seen:
                    say("progress", batch=p["batchId"], rows=p["numInputRows"], durations=p["durationMs"],
                        state=[{k: s.get(k) for k in ("numRowsTotal", "memoryUsedBytes")} for s in p["stateOperators"]])
                    seen = p["batchId"]
        time.sleep(0.1)
    query.stop()
    counts = {t: spark.sql(f"SELECT count(*) AS n FROM {cat}.{main['namespace']}.{t}").collect()[0]["n"]
              for t in [*(raw_table_of(c).name for c in INPUT_EVENTS), DEAD_LETTERS.name]}
    say("stopped", counts=counts)
    spark.stop()
    return 0


def start(spark: Any, conf: dict[str, Any], run_conf: dict[str, Any], key: bytes, key_id: str) -> Any:
    """Create the run's namespace and tables, and start its streaming query."""
    cat, ns = conf["catalog"]["name"], run_conf["namespace"]
    topics: dict[str, str] = run_conf["topics"]
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {cat}.{ns}")
    for table in [*(raw_table_of(c) for c in INPUT_EVENTS), DEAD_LETTERS]:
        spark.sql(create_table(cat, ns, table))
    source = (spark.readStream.format("kafka").options(**kafka_options(conf))
              .option("subscribe", ",".join(topics[c.name] for c in INPUT_EVENTS))
              .option("startingOffsets", "earliest").option("kafka.isolation.level", "read_committed")
              .option("groupIdPrefix", run_conf["group"]))
    if conf.get("max_offsets_per_trigger"):
        source = source.option("maxOffsetsPerTrigger", str(conf["max_offsets_per_trigger"]))
    frame = checked(source.load().withColumnRenamed("timestamp", "ingested_at"), topics,
                    conf["future_tolerance_ms"])
    # The de-duplication keeps each valid event id once per topic for the Flink job's retention, in event time
    # (Spark's watermark); a dead letter is keyed by its own position, so every one passes.
    frame = frame.selectExpr(
        "*", "reason IS NULL AS valid",
        "CASE WHEN reason IS NULL THEN event_id ELSE concat(CAST(partition AS STRING), ':', CAST(offset AS STRING)) "
        "END AS dedup_id", "coalesce(event_time, ingested_at) AS dedup_time")
    frame = (frame.withWatermark("dedup_time", f"{conf['dedup_retention_s']} seconds")
             .dropDuplicatesWithinWatermark(["topic", "valid", "dedup_id"]))
    writer = BatchWriter(conf, run_conf, key, key_id)
    return (frame.writeStream.queryName(run_conf["namespace"]).foreachBatch(writer)
            .option("checkpointLocation", run_conf["checkpoint"])
            .trigger(processingTime="0 seconds").start())


class BatchWriter:
    """Each micro-batch into the raw tables, the dead-letter topic and the dead-letters table.

    A batch Spark runs again after a restart (its offsets logged, its commit not) finds its tag in the snapshots
    of the tables it already reached and skips them, so the lake gets each batch once: the check runs on the first
    batch of a process only, the one a restart can repeat. The topic has no such tag: it is written before the
    dead-letters table, and skipped when that table has the batch, so a crash between the two repeats its records
    (at least once, where the Flink job's transactional sink is exactly once)."""

    def __init__(self, conf: dict[str, Any], run_conf: dict[str, Any], key: bytes, key_id: str) -> None:
        cat, ns = conf["catalog"]["name"], run_conf["namespace"]
        self.conf, self.first = conf, True
        topics = run_conf["topics"]
        self.raw = [(f"{cat}.{ns}.{raw_table_of(c).name}", topics[c.name],
                     raw_select(raw_table_of(c), c, c.name, key_id, key)) for c in INPUT_EVENTS]
        self.dead_letters = f"{cat}.{ns}.{DEAD_LETTERS.name}"
        self.dead_letter_select = dead_letter_select(masked_payload())
        self.dead_letter_topic = run_conf["dead_letter_topic"]
        self.checkpoint = Path(run_conf["checkpoint"])

    def query_id(self) -> str:
        """The query's id, kept in its checkpoint (written before its first batch) and the same after a restart."""
        return str(json.loads((self.checkpoint / "metadata").read_text())["id"])

    def __call__(self, batch: Any, batch_id: int) -> None:
        tag = f"{self.query_id()}:{batch_id}"
        done = {t for t in [*(r[0] for r in self.raw), self.dead_letters]
                if self.first and committed_batches(batch.sparkSession, t, tag)}
        self.first = False
        batch = batch.persist()
        try:
            if batch.isEmpty():  # a batch run only to move the watermark on: nothing to commit
                return
            for table, topic, select in self.raw:
                if table not in done:
                    (batch.where(f"valid AND topic = '{topic}'").selectExpr(*select).writeTo(table)
                     .option("fanout-enabled", "true").option(f"snapshot-property.{BATCH_PROPERTY}", tag).append())
            if self.dead_letters not in done:
                letters = batch.where("NOT valid").selectExpr(*self.dead_letter_select)
                (letters.selectExpr("to_json(struct(*)) AS value").write.format("kafka")
                 .options(**kafka_options(self.conf)).option("topic", self.dead_letter_topic).save())
                (letters.writeTo(self.dead_letters).option("fanout-enabled", "true")
                 .option(f"snapshot-property.{BATCH_PROPERTY}", tag).append())
        finally:
            batch.unpersist()


def check(conf: dict[str, Any]) -> int:
    """Validate JSON lines {"kind", "payload", "ingested_ms"} from stdin as the peer does; print one JSON line each."""
    from pyspark.sql import SparkSession
    builder = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
    for k, v in SPARK_CONF.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    rows = [json.loads(line) for line in sys.stdin if line.strip()]
    topics = {c.name: c.name for c in INPUT_EVENTS}
    data = [(r["kind"], 0, i, r["ingested_ms"], None if r["payload"] is None else r["payload"].encode("utf-8"))
            for i, r in enumerate(rows)]
    frame = spark.createDataFrame(data, "topic STRING, partition INT, offset BIGINT, ms BIGINT, value BINARY")
    frame = frame.selectExpr("topic", "partition", "offset", "timestamp_millis(ms) AS ingested_at", "value")
    key, key_id = conf["key"].encode(), conf["key_id"]
    out = checked(frame, topics, conf["future_tolerance_ms"]).selectExpr(
        "offset", "reason", "event_id", "unix_micros(event_time) AS event_time_us",
        f"{pseudonym('transaction.account_number', key_id, key)} AS account_pseudonym")
    # A heartbeat is filtered out before validation: it comes back as no row.
    for r in sorted(out.collect(), key=lambda r: r["offset"]):
        print(json.dumps({"offset": r["offset"], "reason": r["reason"], "event_id": r["event_id"],
                          "event_time_us": r["event_time_us"], "account_pseudonym": r["account_pseudonym"]}))
    spark.stop()
    return 0


if __name__ == "__main__":
    mode, config = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    raise SystemExit(run(config) if mode == "run" else check(config))
