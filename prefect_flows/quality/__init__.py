"""Data-quality checks as plain functions over DataFrames and table metadata (run as tasks by data_quality)."""
