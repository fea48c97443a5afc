-- Every invalid message, once, with its reason. PII values are hashed inside the payload too
-- (by field name, and e-mail/phone/account-number shaped text anywhere: +country or (area) phones and
-- runs of 9+ digits, so dates and times stay readable), then payloads are cut to 64 KiB. Every
-- pattern is bounded, so a hostile payload (1 MB of letters or digits) costs linear time, never
-- quadratic backtracking. The patterns run before the cut: they read the payload as decoded text
-- (invalid UTF-8 becomes U+FFFD), and SUBSTRING on the raw bytes of invalid UTF-8 fails the task.
CREATE TEMPORARY VIEW dead_letters AS
SELECT
  SHA256(CONCAT(source_topic, ':', CAST(src_partition AS STRING), ':', CAST(src_offset AS STRING))) AS dlq_id,
  source_topic, src_partition AS source_partition, src_offset AS source_offset, reason,
  SUBSTRING(
    REGEXP_REPLACE(
      REGEXP_REPLACE(
        REGEXP_REPLACE(COALESCE(payload, ''),
          '"(full_name|email|phone|account_number)"\s*:\s*"[^"]*"', '"$1":"<pii-hashed>"'),
        '[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}', '<email>'),
      '\+[0-9][0-9 ()-]{7,40}[0-9]|\([0-9]{2,5}\) ?[0-9][0-9 -]{5,30}[0-9]|[0-9]{9,40}', '<number>'),
    1, 65536) AS payload,
  CHAR_LENGTH(COALESCE(payload, '')) AS payload_bytes,
  CAST(ingested_at AS TIMESTAMP_LTZ(6)) AS received_at
FROM (
  SELECT '${topic_applications}' AS source_topic, payload, src_partition, src_offset, ingested_at, reason FROM checked_loan_applications WHERE reason IS NOT NULL
  UNION ALL
  SELECT '${topic_transactions}' AS source_topic, payload, src_partition, src_offset, ingested_at, reason FROM checked_transactions WHERE reason IS NOT NULL
  UNION ALL
  SELECT '${topic_repayments}' AS source_topic, payload, src_partition, src_offset, ingested_at, reason FROM checked_repayments WHERE reason IS NOT NULL
);

CREATE TEMPORARY TABLE dead_letter_topic (
  dlq_id STRING, source_topic STRING, source_partition INT, source_offset BIGINT, reason STRING,
  payload STRING, payload_bytes INT, received_at TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic_dead_letters}',
  'properties.bootstrap.servers' = '${kafka_bootstrap}',
  ${kafka_security}
  'properties.max.request.size' = '${kafka_max_message_bytes}',
  'properties.transaction.timeout.ms' = '900000',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'loanrisk-dlq',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);
