-- Parsing and validation in one pass over each raw message (Java, jvm/functions, in FLINK_HOME/lib):
-- parse_event returns the first broken rule and the typed fields; event_time_of the source's rowtime.
CREATE TEMPORARY SYSTEM FUNCTION parse_event AS 'loanrisk.flink.ParseEvent' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION event_time_of AS 'loanrisk.flink.EventTimeOf' LANGUAGE JAVA;

-- The scorer: a vectorized (pandas) Python UDF running the champion ONNX model (udfs/flink_udf.py);
-- score_loan_row is the same model one row per call (the benchmark's row-at-a-time variant).
CREATE TEMPORARY SYSTEM FUNCTION score_loan AS 'udfs.flink_udf.score_loan' LANGUAGE PYTHON;
CREATE TEMPORARY SYSTEM FUNCTION score_loan_row AS 'udfs.flink_udf.score_loan_row' LANGUAGE PYTHON;
