-- The connection to the PostgreSQL serving database, written once: every JDBC table of the job
-- (pg_*, declared in the file of the view it is written from) is created LIKE this one and overrides
-- 'table-name' and, where it needs to, the flushing. It has no columns of its own, so LIKE adds none to
-- the tables declared from it. Their columns and keys are declared in contracts/tables.py, which also
-- renders their PostgreSQL DDL (sql/serving/). The JDBC connector has no TIMESTAMP_LTZ: times are
-- TIMESTAMP(3) in UTC (session and JVM time zone).
CREATE TEMPORARY TABLE serving_jdbc WITH (
  'connector' = 'jdbc', 'url' = '${serving_jdbc_url}', 'table-name' = 'set by each table',
  'username' = '${serving_jdbc_user}', 'password' = '${serving_jdbc_password}',
  'sink.buffer-flush.interval' = '1 s', 'sink.max-retries' = '10'
);
