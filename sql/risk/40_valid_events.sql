-- Valid events, typed, PII replaced by a keyed hash, and each event id kept once (first arrival):
-- repeated ids are duplicates, dropped here while the id is remembered (flink.dedup_retention_s).
-- The deduplication reads only (event_id, e, event_time, proc_time), the parsed row whole, whatever
-- each consumer needs of it: the planner then shares one deduplication (one state) between the
-- consumers instead of building one per consumer's column set.
CREATE TEMPORARY VIEW valid_loan_applications AS
SELECT ${loan_application_columns}, e.ingested_at AS ingested_at, proc_time FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proc_time) AS seen
  FROM (SELECT e.event_id AS event_id, e, event_time, PROCTIME() AS proc_time
        FROM checked_loan_applications WHERE reason IS NULL)
) WHERE seen = 1;

CREATE TEMPORARY VIEW valid_transactions AS
SELECT ${transaction_columns}, e.ingested_at AS ingested_at, proc_time FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proc_time) AS seen
  FROM (SELECT e.event_id AS event_id, e, event_time, PROCTIME() AS proc_time
        FROM checked_transactions WHERE reason IS NULL)
) WHERE seen = 1;

CREATE TEMPORARY VIEW valid_repayments AS
SELECT ${repayment_columns}, e.ingested_at AS ingested_at, proc_time FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY proc_time) AS seen
  FROM (SELECT e.event_id AS event_id, e, event_time, PROCTIME() AS proc_time
        FROM checked_repayments WHERE reason IS NULL)
) WHERE seen = 1;

INSERT INTO ${catalog_name}.${namespace}.raw_loan_applications
SELECT ${raw_loan_applications_select}
FROM valid_loan_applications;

INSERT INTO ${catalog_name}.${namespace}.raw_transactions
SELECT ${raw_transactions_select}
FROM valid_transactions;

INSERT INTO ${catalog_name}.${namespace}.raw_repayments
SELECT ${raw_repayments_select}
FROM valid_repayments;
