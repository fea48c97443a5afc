-- The scorer: a vectorized (pandas) Python UDF running the champion ONNX model (udfs/flink_udf.py);
-- score_loan_row is the same model one row per call (the benchmark's row-at-a-time variant).
CREATE TEMPORARY SYSTEM FUNCTION score_loan AS 'udfs.flink_udf.score_loan' LANGUAGE PYTHON;
CREATE TEMPORARY SYSTEM FUNCTION score_loan_row AS 'udfs.flink_udf.score_loan_row' LANGUAGE PYTHON;
