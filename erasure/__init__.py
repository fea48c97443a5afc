"""Erasure requests carried out on every sink (lake, serving database, Snowflake): above the sinks it spans."""
