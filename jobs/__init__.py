"""PyFlink entry points submitted with `flink run -py`; they run in the Flink runtime environment."""
