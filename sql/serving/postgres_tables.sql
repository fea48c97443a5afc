-- PostgreSQL serving tables (PostgreSQL DDL, applied by `riskctl job submit` before the job starts):
-- the latest state per key that the job upserts, read by the job's lookup joins and by Grafana.
-- Columns, keys and nullability are declared in contracts/tables.py (rendered by contracts/table_sql.py);
-- a column once NOT NULL and now nullable gets an ALTER ... DROP NOT NULL after its table, so existing
-- deployments migrate.

-- Behaviour features per customer and closed window (history, so applications can look up the
-- window that closed at or before their own event time: point-in-time correct, also in replays).
${customer_behaviour_windows_postgres};

${loan_applications_active_postgres};

${loan_scores_latest_postgres};

${risk_by_window_postgres};

${repayments_by_window_postgres};

${loan_outcomes_postgres};

-- Repeated event ids the job dropped (valid messages whose id was seen before): one row per id,
-- repeats = copies dropped. SUM(repeats) is the duplicate count (sql/risk/45_repeated_events.sql).
${repeated_events_postgres};
