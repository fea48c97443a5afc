-- Risk aggregates per tumbling event-time window (${window_minutes} min) and segment (product,
-- region, grade band): applications, scored loans, mean and max PD, high-risk share, expected loss.
-- A row left unscored (NULL probability: no model loaded) counts as an application, never as a score.
CREATE TEMPORARY VIEW risk_by_window AS
SELECT window_start, window_end, product, region, grade_band,
  SUM(IF(trigger_kind = 'application', 1, 0)) AS applications,
  COUNT(DISTINCT IF(probability IS NULL, CAST(NULL AS STRING), loan_id)) AS scored_loans,
  AVG(probability) AS mean_probability,
  MAX(probability) AS max_probability,
  AVG(CASE WHEN probability IS NULL THEN CAST(NULL AS DOUBLE) WHEN probability >= ${alert_threshold} THEN 1.0
      ELSE 0.0 END) AS high_risk_share,
  SUM(expected_loss_usd) AS expected_loss_usd
FROM TABLE(TUMBLE(TABLE scored, DESCRIPTOR(event_time), ${risk_window}))
GROUP BY window_start, window_end, product, region, grade_band;

-- Late and missed payments per window (the late-payment trend).
CREATE TEMPORARY VIEW repayments_by_window AS
SELECT window_start, window_end, COUNT(*) AS repayments,
  SUM(IF(days_past_due > 0 AND paid_date IS NOT NULL, 1, 0)) AS late_payments,
  SUM(IF(paid_date IS NULL, 1, 0)) AS missed_payments
FROM TABLE(TUMBLE(TABLE valid_repayments, DESCRIPTOR(event_time), ${risk_window}))
GROUP BY window_start, window_end;

-- Outcomes per loan, maintained from repayments as an append-only history: each repayment record
-- appends the loan's running worst delay, first day 60+ days past due, and how far it is observed
-- (the row with the most records per loan is its outcome; the default rule lives in contracts/outcomes.py).
-- In arrival order, not event time: every aggregate here is order-free, so a repayment that arrives after
-- the watermark passed it (an API delivering hours late, a dead letter redriven days later, a partition
-- that was idle) still counts, where an event-time OVER would drop it as late and lose a label.
CREATE TEMPORARY VIEW loan_outcomes AS
SELECT loan_id, customer_id,
  MIN(due_date) OVER w AS first_due_date,
  MAX(days_past_due) OVER w AS max_days_past_due,
  MIN(IF(days_past_due >= 60, CAST(event_time AS DATE), CAST(NULL AS DATE))) OVER w AS first_default_date,
  MAX(event_time) OVER w AS observed_until,
  COUNT(*) OVER w AS repayment_records
FROM valid_repayments
WINDOW w AS (PARTITION BY loan_id ORDER BY proc_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

CREATE TEMPORARY TABLE pg_risk_by_window (
  ${pg_risk_by_window_columns}
) WITH ('table-name' = '${pg_risk_by_window_table}') LIKE serving_jdbc;

CREATE TEMPORARY TABLE pg_repayments_by_window (
  ${pg_repayments_by_window_columns}
) WITH ('table-name' = '${pg_repayments_by_window_table}') LIKE serving_jdbc;

CREATE TEMPORARY TABLE pg_loan_outcomes (
  ${pg_loan_outcomes_columns}
) WITH ('table-name' = '${pg_loan_outcomes_table}') LIKE serving_jdbc;

INSERT INTO ${catalog_name}.${namespace}.risk_by_window
SELECT ${risk_by_window_select}
FROM risk_by_window;

INSERT INTO pg_risk_by_window
SELECT ${pg_risk_by_window_select}
FROM risk_by_window;

INSERT INTO pg_repayments_by_window
SELECT ${pg_repayments_by_window_select}
FROM repayments_by_window;

INSERT INTO ${catalog_name}.${namespace}.loan_outcomes
SELECT ${loan_outcomes_select}
FROM loan_outcomes;

INSERT INTO pg_loan_outcomes
SELECT ${pg_loan_outcomes_select}
FROM loan_outcomes;
