-- Valid events, typed, PII replaced by a keyed hash, and each event id kept once (first arrival):
-- first_seen (jvm/functions) passes every valid message through with how many messages with its id came
-- before it, from one keyed state entry per id (kept flink.dedup_retention_s). seen_before = 0 is the
-- event; seen_before > 0 is a duplicate, dropped here and counted by 45_repeated_events.sql from the same
-- state, so the stream is shuffled and its ids held once, not once for the drop and once for the count.
-- Each call has its own uid (the third argument): the planner builds one operator per call, shared by all
-- of its readers, and the uid names its state in savepoints. No on_time (the second, DEFAULT): with it,
-- Flink 2.1.3 drops the rows behind the watermark, and a late valid event must still reach the raw lake;
-- without it, the passed-through event_time stays the time attribute the windows downstream need.
-- proc_time is taken after the call, for the lookup joins. Arguments by position: Flink 2.1.3 cannot
-- parse a view with a PTF called by name (input => TABLE t PARTITION BY ...) when it expands the view.
CREATE TEMPORARY VIEW unique_loan_applications AS
SELECT event_id, e, seen_before, event_time FROM first_seen(
  TABLE accepted_loan_applications PARTITION BY event_id, DEFAULT, 'first-seen-loan-applications');

CREATE TEMPORARY VIEW unique_transactions AS
SELECT event_id, e, seen_before, event_time FROM first_seen(
  TABLE accepted_transactions PARTITION BY event_id, DEFAULT, 'first-seen-transactions');

CREATE TEMPORARY VIEW unique_repayments AS
SELECT event_id, e, seen_before, event_time FROM first_seen(
  TABLE accepted_repayments PARTITION BY event_id, DEFAULT, 'first-seen-repayments');

CREATE TEMPORARY VIEW valid_loan_applications AS
SELECT ${loan_application_columns}, e.ingested_at AS ingested_at, PROCTIME() AS proc_time
FROM unique_loan_applications WHERE seen_before = 0;

CREATE TEMPORARY VIEW valid_transactions AS
SELECT ${transaction_columns}, e.ingested_at AS ingested_at, PROCTIME() AS proc_time
FROM unique_transactions WHERE seen_before = 0;

CREATE TEMPORARY VIEW valid_repayments AS
SELECT ${repayment_columns}, e.ingested_at AS ingested_at, PROCTIME() AS proc_time
FROM unique_repayments WHERE seen_before = 0;

INSERT INTO ${catalog_name}.${namespace}.raw_loan_applications
SELECT ${raw_loan_applications_select}
FROM valid_loan_applications;

INSERT INTO ${catalog_name}.${namespace}.raw_transactions
SELECT ${raw_transactions_select}
FROM valid_transactions;

INSERT INTO ${catalog_name}.${namespace}.raw_repayments
SELECT ${raw_repayments_select}
FROM valid_repayments;
