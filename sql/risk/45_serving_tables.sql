-- PostgreSQL serving tables as Flink sees them (JDBC, upsert by primary key); columns and keys are
-- declared in contracts/tables.py, which also renders their PostgreSQL DDL (sql/serving/). The job also
-- reads two of them in lookup joins. Each takes the connection LIKE serving_jdbc (15_serving_jdbc.sql)
-- and overrides the target table and, where it differs, the flushing. The JDBC connector has no
-- TIMESTAMP_LTZ: times are TIMESTAMP(3) in UTC (session and JVM time zone).
CREATE TEMPORARY TABLE pg_customer_behaviour_windows (
  ${pg_customer_behaviour_windows_columns}
) WITH ('table-name' = '${pg_customer_behaviour_windows_table}',
        'sink.buffer-flush.interval' = '200 ms', 'sink.buffer-flush.max-rows' = '500')
  LIKE serving_jdbc;

CREATE TEMPORARY TABLE pg_loan_applications_active (
  ${pg_loan_applications_active_columns}
) WITH ('table-name' = '${pg_loan_applications_active_table}',
        'sink.buffer-flush.interval' = '200 ms', 'sink.buffer-flush.max-rows' = '500')
  LIKE serving_jdbc;

CREATE TEMPORARY TABLE pg_loan_scores_latest (
  ${pg_loan_scores_latest_columns}
) WITH ('table-name' = '${pg_loan_scores_latest_table}',
        'sink.buffer-flush.interval' = '200 ms', 'sink.buffer-flush.max-rows' = '500')
  LIKE serving_jdbc;

CREATE TEMPORARY TABLE pg_risk_by_window (
  ${pg_risk_by_window_columns}
) WITH ('table-name' = '${pg_risk_by_window_table}') LIKE serving_jdbc;

CREATE TEMPORARY TABLE pg_repayments_by_window (
  ${pg_repayments_by_window_columns}
) WITH ('table-name' = '${pg_repayments_by_window_table}') LIKE serving_jdbc;

CREATE TEMPORARY TABLE pg_loan_outcomes (
  ${pg_loan_outcomes_columns}
) WITH ('table-name' = '${pg_loan_outcomes_table}') LIKE serving_jdbc;

CREATE TEMPORARY TABLE risk_alerts_topic (
  loan_id STRING, customer_id STRING, trigger_time TIMESTAMP(3), trigger_kind STRING, model_version STRING,
  probability DOUBLE, reason_codes STRING, product STRING, region STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic_alerts}',
  'properties.bootstrap.servers' = '${kafka_bootstrap}',
  ${kafka_security}
  'properties.transaction.timeout.ms' = '900000',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'loanrisk-alerts',
  'key.format' = 'raw', 'key.fields' = 'loan_id', 'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601'
);
