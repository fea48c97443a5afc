-- What gets scored, and when. Twice per loan life:
--  1. application: the application's features joined (lookup join, so an application is never
--     held back until a window closes: the latency path) to the customer's behaviour window that
--     closed at or before the application's event time, or, while that one is not computed yet,
--     the one before it; behaviour_as_of records which window was used;
--  2. behaviour_window: when a customer's behaviour window closes, their active loan is re-scored
--     with the application features (looked up) and the new behaviour.
-- Formulas: contracts/features.py.
CREATE TEMPORARY VIEW application_features AS
SELECT *,
  -- The behaviour window closed before that one.
  CAST(TIMESTAMPADD(MINUTE, -${behaviour_window_min}, closed_slot) AS TIMESTAMP(3)) AS previous_slot
FROM (
SELECT application_id AS loan_id, customer_id, event_time, product, region, grade, currency, amount_minor,
  annual_income_minor / 12.0 AS monthly_income_minor,
  COALESCE(monthly_debt_minor / NULLIF(annual_income_minor / 12.0, 0), 0.0) AS debt_to_income,
  COALESCE(amount_minor / NULLIF(CAST(annual_income_minor AS DOUBLE), 0), 0.0) AS loan_to_income,
  COALESCE(installment_minor / NULLIF(annual_income_minor / 12.0, 0), 0.0) AS installment_to_income,
  COALESCE(revolving_balance_minor / NULLIF(CAST(revolving_limit_minor AS DOUBLE), 0), 0.0) AS credit_utilization,
  CAST(interest_rate AS DOUBLE) AS interest_rate,
  CAST(term_months AS DOUBLE) AS term_months,
  CAST(COALESCE(emp_length_years, 0) AS DOUBLE) AS emp_length_years,
  CAST(delinquencies_2y AS DOUBLE) AS delinquencies_2y,
  CAST(inquiries_12m AS DOUBLE) AS inquiries_12m,
  IF(collateral_value_minor IS NULL, 0.0, 1.0) AS is_secured,
  COALESCE(amount_minor / NULLIF(CAST(collateral_value_minor AS DOUBLE), 0), 0.0) AS loan_to_value,
  -- The application attributes' features: each as sent, NULL when absent (contracts/attributes.py).
  ${attribute_features}
  -- End of the last behaviour window closed at event_time (windows are epoch-aligned).
  CAST(TIMESTAMPADD(MINUTE, CAST(FLOOR(TIMESTAMPDIFF(MINUTE, TIMESTAMP '1970-01-01 00:00:00',
       CAST(event_time AS TIMESTAMP(3))) / ${behaviour_window_min}.0) AS INT) * ${behaviour_window_min},
       TIMESTAMP '1970-01-01 00:00:00') AS TIMESTAMP(3)) AS closed_slot,
  PROCTIME() AS lookup_time
FROM valid_loan_applications);

-- The active-loan lookup of the behaviour-window trigger below reads this table back.
CREATE TEMPORARY TABLE pg_loan_applications_active (
  ${pg_loan_applications_active_columns}
) WITH ('table-name' = '${pg_loan_applications_active_table}',
        'sink.buffer-flush.interval' = '${serving_flush}', 'sink.buffer-flush.max-rows' = '500')
  LIKE serving_jdbc;

INSERT INTO pg_loan_applications_active
SELECT ${pg_loan_applications_active_select}
FROM application_features;

CREATE TEMPORARY VIEW application_scoring_input AS
SELECT 'application' AS trigger_kind, a.loan_id, a.customer_id, a.event_time, a.product, a.region, a.grade,
  a.currency, a.amount_minor,
  CAST(COALESCE(b0.behaviour_as_of, b1.behaviour_as_of) AS TIMESTAMP_LTZ(3)) AS behaviour_as_of,
  a.debt_to_income, a.loan_to_income, a.installment_to_income, a.credit_utilization, a.interest_rate,
  a.term_months, a.emp_length_years, a.delinquencies_2y, a.inquiries_12m, a.is_secured, a.loan_to_value,
  ${attribute_features_of_a}
  COALESCE(b0.income_stability, b1.income_stability, 0.0) AS income_stability,
  COALESCE(COALESCE(b0.debit_minor_last, b1.debit_minor_last) / NULLIF(a.monthly_income_minor, 0), 0.0)
    AS spend_to_income,
  COALESCE(COALESCE(b0.balance_mean_minor_last, b1.balance_mean_minor_last) / NULLIF(a.monthly_income_minor, 0),
    0.0) AS balance_to_income,
  COALESCE(b0.dpd_current, b1.dpd_current, 0.0) AS dpd_current,
  COALESCE(b0.dpd_max, b1.dpd_max, 0.0) AS dpd_max,
  COALESCE(b0.dpd_mean, b1.dpd_mean, 0.0) AS dpd_mean,
  COALESCE(b0.late_payments, b1.late_payments, 0.0) AS late_payments,
  COALESCE(b0.missed_payments, b1.missed_payments, 0.0) AS missed_payments,
  COALESCE(b0.behaviour_windows, b1.behaviour_windows, 0.0) AS behaviour_windows
FROM application_features AS a
LEFT JOIN pg_customer_behaviour_windows FOR SYSTEM_TIME AS OF a.lookup_time AS b0
  ON a.customer_id = b0.customer_id AND a.closed_slot = b0.behaviour_as_of
LEFT JOIN pg_customer_behaviour_windows FOR SYSTEM_TIME AS OF a.lookup_time AS b1
  ON a.customer_id = b1.customer_id AND a.previous_slot = b1.behaviour_as_of;

CREATE TEMPORARY VIEW window_scoring_input AS
SELECT 'behaviour_window' AS trigger_kind, a.loan_id, w.customer_id, w.window_time AS event_time, a.product,
  a.region, a.grade, a.currency, a.amount_minor, w.behaviour_as_of,
  a.debt_to_income, a.loan_to_income, a.installment_to_income, a.credit_utilization, a.interest_rate,
  a.term_months, a.emp_length_years, a.delinquencies_2y, a.inquiries_12m, a.is_secured, a.loan_to_value,
  ${attribute_features_of_a}
  w.income_stability,
  COALESCE(w.debit_minor_last / NULLIF(a.monthly_income_minor, 0), 0.0) AS spend_to_income,
  COALESCE(w.balance_mean_minor_last / NULLIF(a.monthly_income_minor, 0), 0.0) AS balance_to_income,
  w.dpd_current, w.dpd_max, w.dpd_mean, w.late_payments, w.missed_payments, w.behaviour_windows
FROM (SELECT *, PROCTIME() AS lookup_time FROM customer_behaviour_windows) AS w
JOIN pg_loan_applications_active FOR SYSTEM_TIME AS OF w.lookup_time AS a
  ON w.customer_id = a.customer_id
WHERE w.behaviour_as_of > CAST(a.applied_at AS TIMESTAMP_LTZ(3));
