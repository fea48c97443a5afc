-- The cost ladder's extra sinks (bench/cost_ladder.py): each ends the risk job's own views at a stage
-- in a blackhole, so one stage's cost can be told from the next. Loaded after sql/risk, never by the
-- product's job. Each selects a column computed at its stage, so the planner cannot prune that stage.

CREATE TEMPORARY TABLE ladder_source (event_time TIMESTAMP_LTZ(3), payload_chars INT)
WITH ('connector' = 'blackhole');

CREATE TEMPORARY TABLE ladder_checked (reason STRING, event_id STRING)
WITH ('connector' = 'blackhole');

CREATE TEMPORARY TABLE ladder_unique (event_id STRING, event_time TIMESTAMP_LTZ(3))
WITH ('connector' = 'blackhole');

CREATE TEMPORARY TABLE ladder_scoring_input (trigger_kind STRING, loan_id STRING, income_stability DOUBLE,
  dpd_max DOUBLE)
WITH ('connector' = 'blackhole');

-- 1. The Kafka sources with their event time and watermarks.
INSERT INTO ladder_source
SELECT event_time, CHAR_LENGTH(payload) FROM kafka_loan_applications
UNION ALL SELECT event_time, CHAR_LENGTH(payload) FROM kafka_transactions
UNION ALL SELECT event_time, CHAR_LENGTH(payload) FROM kafka_repayments;

-- 2. + parsing and validation against the contracts.
INSERT INTO ladder_checked
SELECT reason, e.event_id FROM checked_loan_applications
UNION ALL SELECT reason, e.event_id FROM checked_transactions
UNION ALL SELECT reason, e.event_id FROM checked_repayments;

-- 3. + de-duplication by event id.
INSERT INTO ladder_unique
SELECT event_id, event_time FROM valid_loan_applications
UNION ALL SELECT event_id, event_time FROM valid_transactions
UNION ALL SELECT event_id, event_time FROM valid_repayments;

-- 7. + the lookups of the scoring input (behaviour windows and active loans read back from PostgreSQL).
INSERT INTO ladder_scoring_input
SELECT trigger_kind, loan_id, income_stability, dpd_max FROM application_scoring_input
UNION ALL SELECT trigger_kind, loan_id, income_stability, dpd_max FROM window_scoring_input;
