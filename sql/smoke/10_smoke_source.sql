-- Cross-engine smoke test: JSON events from one Kafka topic, read once from the earliest to the
-- latest offset (bounded), so the job ends and Iceberg commits on end of input.
CREATE TEMPORARY TABLE smoke_source (
  id BIGINT,
  name STRING,
  amount DOUBLE,
  event_time TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'kafka',
  'topic' = '${smoke_topic}',
  'properties.bootstrap.servers' = '${kafka_bootstrap}',
  ${kafka_security}
  'properties.group.id' = 'loanrisk-smoke',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);
