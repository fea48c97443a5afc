-- The three input topics, read as raw bytes so a malformed message is still a row (validated next).
-- Event time comes from the payload (ingestion time when it cannot be parsed, so a broken message
-- never stalls the watermark); watermarks allow ${watermark_delay_s} s of out-of-order events.
CREATE TEMPORARY TABLE kafka_loan_applications (
  payload STRING,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  ingested_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  event_time AS COALESCE(CAST(TO_TIMESTAMP(JSON_VALUE(payload, '$.event_time'), 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS TIMESTAMP_LTZ(3)), ingested_at),
  WATERMARK FOR event_time AS event_time - ${watermark_delay}
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic_applications}',
  'properties.bootstrap.servers' = '${kafka_bootstrap}',
  'properties.group.id' = 'loanrisk-risk-job',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'group-offsets',
  'properties.auto.offset.reset' = 'earliest',
  'format' = 'raw'
);

CREATE TEMPORARY TABLE kafka_transactions WITH ('topic' = '${topic_transactions}')
  LIKE kafka_loan_applications;

CREATE TEMPORARY TABLE kafka_repayments WITH ('topic' = '${topic_repayments}')
  LIKE kafka_loan_applications;
