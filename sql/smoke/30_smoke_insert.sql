-- Copy every event into the lake, through one Iceberg writer. With a writer per source subtask, the
-- writer whose partitions end first sends its files at end of input, a checkpoint completes while the
-- other still reads, and the committer (iceberg-flink 1.11 FlinkSink) replaces the first writer's
-- end-of-input files by the last one's: their rows are lost (tests/stack/test_foundation.py shows it;
-- docs/RELIABILITY.md, Limits). With one writer there is one end of input.
INSERT INTO ${catalog_name}.smoke.${smoke_table} /*+ OPTIONS('write-parallelism'='1') */
SELECT id, name, amount, CAST(event_time AS TIMESTAMP_LTZ(6)) FROM smoke_source;
