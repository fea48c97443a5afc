-- The scorer: a vectorized (pandas) Python UDF running the champion ONNX model (udfs/flink_udf.py).
CREATE TEMPORARY SYSTEM FUNCTION score_loan AS 'udfs.flink_udf.score_loan' LANGUAGE PYTHON;
