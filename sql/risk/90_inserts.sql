-- The job's sinks, submitted together as one statement set.
INSERT INTO ${catalog_name}.${namespace}.raw_loan_applications
SELECT ${loan_application_names}, CAST(ingested_at AS TIMESTAMP_LTZ(6)), CAST(event_time AS DATE)
FROM valid_loan_applications;

INSERT INTO ${catalog_name}.${namespace}.raw_transactions
SELECT ${transaction_names}, CAST(ingested_at AS TIMESTAMP_LTZ(6)), CAST(event_time AS DATE)
FROM valid_transactions;

INSERT INTO ${catalog_name}.${namespace}.raw_repayments
SELECT ${repayment_names}, CAST(ingested_at AS TIMESTAMP_LTZ(6)), CAST(event_time AS DATE)
FROM valid_repayments;

INSERT INTO ${catalog_name}.${namespace}.dead_letters
SELECT dlq_id, source_topic, source_partition, source_offset, reason, payload, payload_bytes, received_at,
       CAST(received_at AS DATE)
FROM dead_letters;

INSERT INTO dead_letter_topic
SELECT dlq_id, source_topic, source_partition, source_offset, reason, payload, payload_bytes,
       CAST(received_at AS TIMESTAMP_LTZ(3))
FROM dead_letters;

INSERT INTO ${catalog_name}.${namespace}.customer_behaviour_windows
SELECT customer_id, CAST(behaviour_as_of AS TIMESTAMP_LTZ(6)), income_stability, debit_minor_last,
  balance_mean_minor_last, dpd_current, dpd_max, dpd_mean, late_payments, missed_payments, behaviour_windows,
  CAST(behaviour_as_of AS DATE)
FROM customer_behaviour;

INSERT INTO pg_customer_behaviour
SELECT customer_id, CAST(behaviour_as_of AS TIMESTAMP(3)), income_stability, debit_minor_last, balance_mean_minor_last, dpd_current,
  dpd_max, dpd_mean, late_payments, missed_payments, behaviour_windows
FROM customer_behaviour;

INSERT INTO pg_applications_active
SELECT customer_id, loan_id, CAST(event_time AS TIMESTAMP(3)), product, region, grade, currency, amount_minor,
  monthly_income_minor, debt_to_income, loan_to_income, installment_to_income, credit_utilization,
  interest_rate, term_months, emp_length_years, delinquencies_2y, inquiries_12m, is_secured, loan_to_value
FROM application_features;

INSERT INTO ${catalog_name}.${namespace}.scores
SELECT `trigger`, loan_id, customer_id, CAST(event_time AS TIMESTAMP_LTZ(6)), CAST(behaviour_as_of AS TIMESTAMP_LTZ(6)),
  product, region, grade_band, currency, amount_minor, probability, model_version, reason_codes, exposure_usd,
  expected_loss_usd, ${feature_names}, CAST(event_time AS DATE)
FROM scored;

-- A row the scorer left unscored (no model loaded) is upserted too, with NULL probability: the serving row
-- says the latest trigger was not scored. No filter here: a filter on the scorer's output makes the
-- planner run a second scorer for this sink instead of sharing the one scorer.
INSERT INTO pg_loan_scores
SELECT loan_id, customer_id, CAST(event_time AS TIMESTAMP(3)), `trigger`, model_version, probability,
  reason_codes, product, region, grade_band, exposure_usd, expected_loss_usd
FROM scored;

INSERT INTO risk_alerts_topic
SELECT loan_id, customer_id, CAST(event_time AS TIMESTAMP_LTZ(3)), `trigger`, model_version, probability,
  reason_codes, product, region
FROM risk_alerts;

INSERT INTO ${catalog_name}.${namespace}.risk_by_window
SELECT CAST(window_start AS TIMESTAMP_LTZ(6)), CAST(window_end AS TIMESTAMP_LTZ(6)), product, region, grade_band,
  applications, scored_loans, mean_probability, max_probability, high_risk_share, expected_loss_usd,
  CAST(window_start AS DATE)
FROM risk_by_window;

INSERT INTO pg_risk_by_window
SELECT window_start, window_end, product, region, grade_band,
  applications, scored_loans, mean_probability, max_probability, high_risk_share, expected_loss_usd
FROM risk_by_window;

INSERT INTO pg_repayments_by_window
SELECT window_start, window_end, repayments, late_payments,
  missed_payments
FROM repayments_by_window;

INSERT INTO ${catalog_name}.${namespace}.loan_outcomes
SELECT loan_id, customer_id, first_due_date, max_days_past_due, first_default_date,
  CAST(observed_until AS TIMESTAMP_LTZ(6)), repayment_records, CAST(observed_until AS DATE)
FROM loan_outcomes;

INSERT INTO pg_loan_outcomes
SELECT loan_id, customer_id, first_due_date, max_days_past_due, first_default_date,
  CAST(observed_until AS TIMESTAMP(3)), repayment_records
FROM loan_outcomes;
