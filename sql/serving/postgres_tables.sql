-- PostgreSQL serving tables (PostgreSQL DDL, applied by `riskctl job submit` before the job starts):
-- the latest state per key that the job upserts, read by the job's lookup joins and by Grafana.
-- Behaviour features per customer and closed window (history, so applications can look up the
-- window that closed at or before their own event time: point-in-time correct, also in replays).
CREATE TABLE IF NOT EXISTS customer_behaviour_windows (
  customer_id TEXT NOT NULL,
  behaviour_as_of TIMESTAMP NOT NULL,
  income_stability DOUBLE PRECISION NOT NULL,
  debit_minor_last DOUBLE PRECISION NOT NULL,
  balance_mean_minor_last DOUBLE PRECISION NOT NULL,
  dpd_current DOUBLE PRECISION NOT NULL,
  dpd_max DOUBLE PRECISION NOT NULL,
  dpd_mean DOUBLE PRECISION NOT NULL,
  late_payments DOUBLE PRECISION NOT NULL,
  missed_payments DOUBLE PRECISION NOT NULL,
  behaviour_windows DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (customer_id, behaviour_as_of)
);

CREATE TABLE IF NOT EXISTS loan_applications_active (
  customer_id TEXT PRIMARY KEY,
  loan_id TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL,
  product TEXT, region TEXT, grade TEXT, currency TEXT,
  amount_minor BIGINT, monthly_income_minor DOUBLE PRECISION,
  debt_to_income DOUBLE PRECISION, loan_to_income DOUBLE PRECISION, installment_to_income DOUBLE PRECISION,
  credit_utilization DOUBLE PRECISION, interest_rate DOUBLE PRECISION, term_months DOUBLE PRECISION,
  emp_length_years DOUBLE PRECISION, delinquencies_2y DOUBLE PRECISION, inquiries_12m DOUBLE PRECISION,
  is_secured DOUBLE PRECISION, loan_to_value DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS loan_scores_latest (
  loan_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  scored_at TIMESTAMPTZ NOT NULL,
  trigger TEXT NOT NULL,
  model_version TEXT,  -- NULL with probability: the latest trigger came while no model could load
  probability DOUBLE PRECISION,
  reason_codes TEXT,
  product TEXT, region TEXT, grade_band TEXT,
  exposure_usd DOUBLE PRECISION,
  expected_loss_usd DOUBLE PRECISION,
  written_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- An existing table may still declare both NOT NULL, and an unscored row would fail the job's JDBC sink.
ALTER TABLE loan_scores_latest ALTER COLUMN model_version DROP NOT NULL;
ALTER TABLE loan_scores_latest ALTER COLUMN probability DROP NOT NULL;

CREATE TABLE IF NOT EXISTS risk_by_window (
  window_start TIMESTAMPTZ NOT NULL,
  window_end TIMESTAMPTZ NOT NULL,
  product TEXT NOT NULL, region TEXT NOT NULL, grade_band TEXT NOT NULL,
  applications BIGINT NOT NULL,
  scored_loans BIGINT NOT NULL,
  mean_probability DOUBLE PRECISION,
  max_probability DOUBLE PRECISION,
  high_risk_share DOUBLE PRECISION,
  expected_loss_usd DOUBLE PRECISION,
  PRIMARY KEY (window_start, product, region, grade_band)
);

CREATE TABLE IF NOT EXISTS repayments_by_window (
  window_start TIMESTAMPTZ PRIMARY KEY,
  window_end TIMESTAMPTZ NOT NULL,
  repayments BIGINT NOT NULL,
  late_payments BIGINT NOT NULL,
  missed_payments BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS loan_outcomes (
  loan_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  first_due_date DATE,
  max_days_past_due INTEGER NOT NULL,
  first_default_date DATE,
  observed_until TIMESTAMPTZ NOT NULL,
  repayment_records BIGINT NOT NULL
);

-- Repeated event ids the job dropped (valid messages whose id was seen before): one row per id,
-- repeats = copies dropped. SUM(repeats) is the duplicate count (sql/risk/35_repeated_events.sql).
CREATE TABLE IF NOT EXISTS repeated_events (
  source_topic TEXT NOT NULL,
  event_id TEXT NOT NULL,
  repeats BIGINT NOT NULL,
  last_seen_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (source_topic, event_id)
);
