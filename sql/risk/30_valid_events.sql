-- Valid events, typed, PII replaced by a keyed hash, and each event id kept once (first arrival):
-- repeated ids are duplicates, dropped here (state expires after table.exec.state.ttl).
CREATE TEMPORARY VIEW valid_loan_applications AS
SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proc_time) AS seen
  FROM (SELECT ${loan_application_columns}, ingested_at, PROCTIME() AS proc_time
        FROM checked_loan_applications WHERE reason IS NULL)
) WHERE seen = 1;

CREATE TEMPORARY VIEW valid_transactions AS
SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proc_time) AS seen
  FROM (SELECT ${transaction_columns}, ingested_at, PROCTIME() AS proc_time
        FROM checked_transactions WHERE reason IS NULL)
) WHERE seen = 1;

CREATE TEMPORARY VIEW valid_repayments AS
SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proc_time) AS seen
  FROM (SELECT ${repayment_columns}, ingested_at, PROCTIME() AS proc_time
        FROM checked_repayments WHERE reason IS NULL)
) WHERE seen = 1;
