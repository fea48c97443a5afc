"""Python UDFs that run inside Flink (Flink runtime environment: numpy, pandas, onnxruntime only)."""
