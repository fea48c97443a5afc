-- Iceberg tables of the lake: raw events (one per input topic) and dead letters, partitioned by day.
-- Columns come from the contracts; Iceberg commits on every checkpoint (exactly once).
CREATE DATABASE IF NOT EXISTS ${catalog_name}.${namespace};

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.raw_loan_applications (
  ${loan_application_lake_columns}
) PARTITIONED BY (event_date) WITH ('format-version' = '2', 'write.upsert.enabled' = 'false');

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.raw_transactions (
  ${transaction_lake_columns}
) PARTITIONED BY (event_date) WITH ('format-version' = '2');

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.raw_repayments (
  ${repayment_lake_columns}
) PARTITIONED BY (event_date) WITH ('format-version' = '2');

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.dead_letters (
  dlq_id STRING,
  source_topic STRING,
  source_partition INT,
  source_offset BIGINT,
  reason STRING,
  payload STRING,
  payload_bytes INT,
  received_at TIMESTAMP_LTZ(6),
  received_date DATE
) PARTITIONED BY (received_date) WITH ('format-version' = '2');
