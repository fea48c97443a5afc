-- Iceberg tables of the lake: raw events (one per input topic) and dead letters, partitioned by day.
-- Columns come from the contracts; Iceberg commits on every checkpoint (exactly once). Writers are not
-- hash-distributed by partition ('none'): they chain to the operator before them, saving a shuffle of
-- every row and a partition-path string per row; each writer may then write a file to every day
-- partition of a checkpoint (maintain_lake compacts them).
CREATE DATABASE IF NOT EXISTS ${catalog_name}.${namespace};

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.raw_loan_applications (
  ${loan_application_lake_columns}
) PARTITIONED BY (event_date) WITH ('format-version' = '2', 'write.distribution-mode' = 'none');

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.raw_transactions (
  ${transaction_lake_columns}
) PARTITIONED BY (event_date) WITH ('format-version' = '2', 'write.distribution-mode' = 'none');

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.raw_repayments (
  ${repayment_lake_columns}
) PARTITIONED BY (event_date) WITH ('format-version' = '2', 'write.distribution-mode' = 'none');

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
) PARTITIONED BY (received_date) WITH ('format-version' = '2', 'write.distribution-mode' = 'none');

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.customer_behaviour_windows (
  customer_id STRING, behaviour_as_of TIMESTAMP_LTZ(6), income_stability DOUBLE, debit_minor_last DOUBLE,
  balance_mean_minor_last DOUBLE, dpd_current DOUBLE, dpd_max DOUBLE, dpd_mean DOUBLE, late_payments DOUBLE,
  missed_payments DOUBLE, behaviour_windows DOUBLE, window_date DATE
) PARTITIONED BY (window_date) WITH ('format-version' = '2', 'write.distribution-mode' = 'none');

-- One row per scoring (trigger 'application' or 'behaviour_window'), with the exact feature row scored.
CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.scores (
  `trigger` STRING, loan_id STRING, customer_id STRING, scored_at TIMESTAMP_LTZ(6),
  behaviour_as_of TIMESTAMP_LTZ(6), product STRING, region STRING, grade_band STRING, currency STRING,
  amount_minor BIGINT, probability DOUBLE, model_version STRING, reason_codes STRING, exposure_usd DOUBLE,
  expected_loss_usd DOUBLE,
  ${feature_columns_ddl},
  scored_date DATE
) PARTITIONED BY (scored_date) WITH ('format-version' = '2', 'write.distribution-mode' = 'none');

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.risk_by_window (
  window_start TIMESTAMP_LTZ(6), window_end TIMESTAMP_LTZ(6), product STRING, region STRING, grade_band STRING,
  applications BIGINT, scored_loans BIGINT, mean_probability DOUBLE, max_probability DOUBLE,
  high_risk_share DOUBLE, expected_loss_usd DOUBLE, window_date DATE
) PARTITIONED BY (window_date) WITH ('format-version' = '2', 'write.distribution-mode' = 'none');

-- Append-only outcome history: the row with the latest observed_until per loan is its outcome.
CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.loan_outcomes (
  loan_id STRING, customer_id STRING, first_due_date DATE, max_days_past_due INT,
  first_default_date DATE, observed_until TIMESTAMP_LTZ(6), repayment_records BIGINT, observed_date DATE
) PARTITIONED BY (observed_date) WITH ('format-version' = '2', 'write.distribution-mode' = 'none');
