-- The three input topics, read as raw bytes so a malformed message is still a row (validated next).
-- Event time comes from the payload (event_time_of, jvm/functions: one streaming read up to the field).
-- A message whose event time is missing, unparseable or later than its Kafka timestamp plus
-- flink.future_tolerance_s gets epoch 0 instead, so it can never advance the watermark (it is
-- dead-lettered anyway); watermarks allow ${watermark_delay_s} s of out-of-order events. A watermark
-- heartbeat (contracts/heartbeat.py) carries the same field, so its event time moves the watermark too;
-- 30_validate.sql drops the heartbeat itself.
CREATE TEMPORARY TABLE kafka_loan_applications (
  payload STRING,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  ingested_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  event_time AS event_time_of(payload, ingested_at, '${source_event_time_spec}'),
  WATERMARK FOR event_time AS event_time - ${watermark_delay}
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic_applications}',
  'properties.bootstrap.servers' = '${kafka_bootstrap}',
  ${kafka_security}
  'properties.group.id' = '${consumer_group}',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'group-offsets',
  'properties.auto.offset.reset' = 'earliest',
  'format' = 'raw'
);

CREATE TEMPORARY TABLE kafka_transactions WITH ('topic' = '${topic_transactions}')
  LIKE kafka_loan_applications;

CREATE TEMPORARY TABLE kafka_repayments WITH ('topic' = '${topic_repayments}')
  LIKE kafka_loan_applications;
