-- Every invalid message, once, with its reason. Payloads are redacted by their contract's fields before
-- they are stored (redact_payload, jvm/functions Redactor): PII fields become their pseudonym, text the
-- contract does not expect is masked, numbers and times stay so the reason can be read; a payload that
-- does not parse is masked as text. The result is at most 64 KiB; payload_bytes is the original's size.
CREATE TEMPORARY VIEW dead_letters AS
SELECT
  SHA256(CONCAT(source_topic, ':', CAST(src_partition AS STRING), ':', CAST(src_offset AS STRING))) AS dlq_id,
  source_topic, src_partition AS source_partition, src_offset AS source_offset, reason, payload, payload_bytes,
  CAST(ingested_at AS TIMESTAMP_LTZ(6)) AS received_at
FROM (
  SELECT '${topic_applications}' AS source_topic, redact_payload(payload, '${loan_application_spec}') AS payload,
    CHAR_LENGTH(COALESCE(payload, '')) AS payload_bytes, src_partition, src_offset, ingested_at, reason
  FROM checked_loan_applications WHERE reason IS NOT NULL
  UNION ALL
  SELECT '${topic_transactions}' AS source_topic, redact_payload(payload, '${transaction_spec}') AS payload,
    CHAR_LENGTH(COALESCE(payload, '')) AS payload_bytes, src_partition, src_offset, ingested_at, reason
  FROM checked_transactions WHERE reason IS NOT NULL
  UNION ALL
  SELECT '${topic_repayments}' AS source_topic, redact_payload(payload, '${repayment_spec}') AS payload,
    CHAR_LENGTH(COALESCE(payload, '')) AS payload_bytes, src_partition, src_offset, ingested_at, reason
  FROM checked_repayments WHERE reason IS NOT NULL
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

INSERT INTO ${catalog_name}.${namespace}.dead_letters
SELECT ${dead_letters_select}
FROM dead_letters;

INSERT INTO dead_letter_topic
SELECT dlq_id, source_topic, source_partition, source_offset, reason, payload, payload_bytes,
       CAST(received_at AS TIMESTAMP_LTZ(3))
FROM dead_letters;
