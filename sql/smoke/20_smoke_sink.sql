-- The smoke table in the lake; pyiceberg reads it back.
CREATE DATABASE IF NOT EXISTS ${catalog_name}.smoke;

CREATE TABLE IF NOT EXISTS ${catalog_name}.smoke.${smoke_table} (
  id BIGINT,
  name STRING,
  amount DOUBLE,
  event_time TIMESTAMP_LTZ(6)
);
