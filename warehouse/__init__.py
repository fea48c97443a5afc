"""Snowflake: DDL derived from the contracts, and the exactly-once loader from Iceberg."""
