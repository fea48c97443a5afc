-- Parsing and validation in one pass over each raw message (Java, jvm/functions, in FLINK_HOME/lib):
-- parse_event returns the first broken rule and the typed fields; event_time_of the source's rowtime.
CREATE TEMPORARY SYSTEM FUNCTION parse_event AS 'loanrisk.flink.ParseEvent' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION event_time_of AS 'loanrisk.flink.EventTimeOf' LANGUAGE JAVA;
-- first_seen, a process table function: one keyed state per event id de-duplicates and counts the copies.
CREATE TEMPORARY SYSTEM FUNCTION first_seen AS 'loanrisk.flink.FirstSeen' LANGUAGE JAVA;

-- Personal data, pseudonymised before any sink with HMAC-SHA256 under a key the TaskManagers read from
-- a file (job parameter pii.key_file), so the key is in no plan, REST response or checkpoint:
-- pii_hash the typed PII columns, redact_payload a dead letter's payload by its contract's fields.
CREATE TEMPORARY SYSTEM FUNCTION pii_hash AS 'loanrisk.flink.PiiHash' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION redact_payload AS 'loanrisk.flink.RedactPayload' LANGUAGE JAVA;

-- The scorer: a vectorized (pandas) Python UDF running the champion ONNX model (udfs/flink_udf.py);
-- score_loan_row is the same model one row per call (the benchmark's row-at-a-time variant).
CREATE TEMPORARY SYSTEM FUNCTION score_loan AS 'udfs.flink_udf.score_loan' LANGUAGE PYTHON;
CREATE TEMPORARY SYSTEM FUNCTION score_loan_row AS 'udfs.flink_udf.score_loan_row' LANGUAGE PYTHON;
