-- PostgreSQL serving tables as Flink sees them (JDBC, upsert by primary key); their PostgreSQL DDL
-- is sql/serving/postgres_tables.sql. The job also reads two of them in lookup joins. The JDBC
-- connector has no TIMESTAMP_LTZ: times are TIMESTAMP(3) in UTC (session and JVM time zone).
CREATE TEMPORARY TABLE pg_customer_behaviour (
  customer_id STRING, behaviour_as_of TIMESTAMP(3), income_stability DOUBLE, debit_minor_last DOUBLE,
  balance_mean_minor_last DOUBLE, dpd_current DOUBLE, dpd_max DOUBLE, dpd_mean DOUBLE, late_payments DOUBLE,
  missed_payments DOUBLE, behaviour_windows DOUBLE,
  PRIMARY KEY (customer_id, behaviour_as_of) NOT ENFORCED
) WITH (
  'connector' = 'jdbc', 'url' = '${serving_jdbc_url}', 'table-name' = 'customer_behaviour_windows',
  'username' = '${serving_jdbc_user}', 'password' = '${serving_jdbc_password}',
  'sink.buffer-flush.interval' = '200 ms', 'sink.buffer-flush.max-rows' = '500', 'sink.max-retries' = '10'
);

CREATE TEMPORARY TABLE pg_applications_active (
  customer_id STRING, loan_id STRING, applied_at TIMESTAMP(3), product STRING, region STRING,
  grade STRING, currency STRING, amount_minor BIGINT, monthly_income_minor DOUBLE,
  debt_to_income DOUBLE, loan_to_income DOUBLE, installment_to_income DOUBLE, credit_utilization DOUBLE,
  interest_rate DOUBLE, term_months DOUBLE, emp_length_years DOUBLE, delinquencies_2y DOUBLE,
  inquiries_12m DOUBLE, is_secured DOUBLE, loan_to_value DOUBLE,
  PRIMARY KEY (customer_id) NOT ENFORCED
) WITH (
  'connector' = 'jdbc', 'url' = '${serving_jdbc_url}', 'table-name' = 'loan_applications_active',
  'username' = '${serving_jdbc_user}', 'password' = '${serving_jdbc_password}',
  'sink.buffer-flush.interval' = '200 ms', 'sink.buffer-flush.max-rows' = '500', 'sink.max-retries' = '10'
);

CREATE TEMPORARY TABLE pg_loan_scores (
  loan_id STRING, customer_id STRING, scored_at TIMESTAMP(3), `trigger` STRING, model_version STRING,
  probability DOUBLE, reason_codes STRING, product STRING, region STRING, grade_band STRING,
  exposure_usd DOUBLE, expected_loss_usd DOUBLE,
  PRIMARY KEY (loan_id) NOT ENFORCED
) WITH (
  'connector' = 'jdbc', 'url' = '${serving_jdbc_url}', 'table-name' = 'loan_scores_latest',
  'username' = '${serving_jdbc_user}', 'password' = '${serving_jdbc_password}',
  'sink.buffer-flush.interval' = '200 ms', 'sink.buffer-flush.max-rows' = '500', 'sink.max-retries' = '10'
);

CREATE TEMPORARY TABLE pg_risk_by_window (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), product STRING, region STRING, grade_band STRING,
  applications BIGINT, scored_loans BIGINT, mean_probability DOUBLE, max_probability DOUBLE,
  high_risk_share DOUBLE, expected_loss_usd DOUBLE,
  PRIMARY KEY (window_start, product, region, grade_band) NOT ENFORCED
) WITH (
  'connector' = 'jdbc', 'url' = '${serving_jdbc_url}', 'table-name' = 'risk_by_window',
  'username' = '${serving_jdbc_user}', 'password' = '${serving_jdbc_password}',
  'sink.buffer-flush.interval' = '1 s', 'sink.max-retries' = '10'
);

CREATE TEMPORARY TABLE pg_repayments_by_window (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), repayments BIGINT, late_payments BIGINT,
  missed_payments BIGINT,
  PRIMARY KEY (window_start) NOT ENFORCED
) WITH (
  'connector' = 'jdbc', 'url' = '${serving_jdbc_url}', 'table-name' = 'repayments_by_window',
  'username' = '${serving_jdbc_user}', 'password' = '${serving_jdbc_password}',
  'sink.buffer-flush.interval' = '1 s', 'sink.max-retries' = '10'
);

CREATE TEMPORARY TABLE pg_loan_outcomes (
  loan_id STRING, customer_id STRING, first_due_date DATE, max_days_past_due INT, first_default_date DATE,
  observed_until TIMESTAMP(3), repayment_records BIGINT,
  PRIMARY KEY (loan_id) NOT ENFORCED
) WITH (
  'connector' = 'jdbc', 'url' = '${serving_jdbc_url}', 'table-name' = 'loan_outcomes',
  'username' = '${serving_jdbc_user}', 'password' = '${serving_jdbc_password}',
  'sink.buffer-flush.interval' = '1 s', 'sink.max-retries' = '10'
);

CREATE TEMPORARY TABLE risk_alerts_topic (
  loan_id STRING, customer_id STRING, scored_at TIMESTAMP(3), `trigger` STRING, model_version STRING,
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
