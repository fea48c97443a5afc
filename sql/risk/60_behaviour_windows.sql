-- Customer behaviour per tumbling event-time window (${behaviour_window_days} days, epoch-aligned):
-- salary credits, debits, balances and repayment delays, from transactions and repayments together.
CREATE TEMPORARY VIEW behaviour_events AS
SELECT customer_id, event_time,
  CAST(IF(kind = 'salary' AND direction = 'credit', amount_minor, 0) AS DOUBLE) AS salary_minor,
  CAST(IF(direction = 'debit', amount_minor, 0) AS DOUBLE) AS debit_minor,
  CAST(balance_minor AS DOUBLE) AS balance_minor,
  CAST(NULL AS INT) AS dpd, CAST(NULL AS BIGINT) AS dpd_key,
  0 AS is_late, 0 AS is_missed
FROM valid_transactions
UNION ALL
SELECT customer_id, event_time, 0.0, 0.0, CAST(NULL AS DOUBLE), days_past_due,
  -- event-time second, then days past due: the window's MAX of this is its latest repayment's delay
  -- (LAST_VALUE would follow arrival order, which differs from event time for out-of-order events)
  CAST(UNIX_TIMESTAMP(DATE_FORMAT(event_time, 'yyyy-MM-dd HH:mm:ss')) AS BIGINT) * 1000000
    + LEAST(days_past_due, 999999),
  IF(days_past_due > 0 AND paid_date IS NOT NULL, 1, 0), IF(paid_date IS NULL, 1, 0)
FROM valid_repayments;

CREATE TEMPORARY VIEW behaviour_windows AS
SELECT customer_id, window_start, window_end, window_time,
  SUM(salary_minor) AS salary_minor,
  SUM(debit_minor) AS debit_minor,
  COALESCE(AVG(balance_minor), 0.0) AS balance_mean_minor,
  MAX(dpd) AS dpd_max,
  CAST(SUM(COALESCE(dpd, 0)) AS DOUBLE) AS dpd_sum,
  COUNT(dpd) AS dpd_count,
  CAST(MOD(MAX(dpd_key), 1000000) AS INT) AS dpd_last,
  SUM(is_late) AS late_payments,
  SUM(is_missed) AS missed_payments,
  COUNT(*) AS events
FROM TABLE(TUMBLE(TABLE behaviour_events, DESCRIPTOR(event_time), ${behaviour_window}))
GROUP BY customer_id, window_start, window_end, window_time;

-- Features over the last 3 window slots (the closing one and the two before): a slot without
-- salary counts as zero salary, so income stability = 1 - stddev/mean over exactly 3 slots.
CREATE TEMPORARY VIEW customer_behaviour_windows AS
SELECT customer_id, CAST(window_end AS TIMESTAMP_LTZ(3)) AS behaviour_as_of, window_time,
  CASE WHEN s1 > 0 THEN GREATEST(0.0, LEAST(1.0,
       1 - SQRT(GREATEST(s2 / 3 - (s1 / 3) * (s1 / 3), 0.0)) / (s1 / 3))) ELSE 0.0 END AS income_stability,
  debit_minor AS debit_minor_last,
  balance_mean_minor AS balance_mean_minor_last,
  CAST(COALESCE(dpd_current, 0) AS DOUBLE) AS dpd_current,
  CAST(COALESCE(dpd_max3, 0) AS DOUBLE) AS dpd_max,
  COALESCE(dpd_sum3 / NULLIF(dpd_count3, 0), 0.0) AS dpd_mean,
  CAST(late3 AS DOUBLE) AS late_payments,
  CAST(missed3 AS DOUBLE) AS missed_payments,
  CAST(windows3 AS DOUBLE) AS behaviour_windows
FROM (
  SELECT *,
    SUM(salary_minor) OVER w3 AS s1,
    SUM(salary_minor * salary_minor) OVER w3 AS s2,
    MAX(dpd_max) OVER w3 AS dpd_max3,
    SUM(dpd_sum) OVER w3 AS dpd_sum3,
    CAST(SUM(dpd_count) OVER w3 AS DOUBLE) AS dpd_count3,
    SUM(late_payments) OVER w3 AS late3,
    SUM(missed_payments) OVER w3 AS missed3,
    COUNT(*) OVER w3 AS windows3,
    LAST_VALUE(dpd_last) OVER w3 AS dpd_current
  FROM behaviour_windows
  WINDOW
    w3 AS (PARTITION BY customer_id ORDER BY window_time
           RANGE BETWEEN ${behaviour_range} PRECEDING AND CURRENT ROW)
);

CREATE TEMPORARY TABLE pg_customer_behaviour_windows (
  ${pg_customer_behaviour_windows_columns}
) WITH ('table-name' = '${pg_customer_behaviour_windows_table}',
        'sink.buffer-flush.interval' = '${serving_flush}', 'sink.buffer-flush.max-rows' = '500')
  LIKE serving_jdbc;

INSERT INTO ${catalog_name}.${namespace}.customer_behaviour_windows
SELECT ${customer_behaviour_windows_select}
FROM customer_behaviour_windows;

INSERT INTO pg_customer_behaviour_windows
SELECT ${pg_customer_behaviour_windows_select}
FROM customer_behaviour_windows;
