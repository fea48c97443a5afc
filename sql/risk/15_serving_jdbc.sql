-- The connection to the PostgreSQL serving database, written once: every JDBC table of the job
-- (pg_*) is created LIKE this one and overrides 'table-name' and, where it needs to, the flushing.
-- It has no columns of its own, so LIKE adds none to the tables declared from it.
CREATE TEMPORARY TABLE serving_jdbc WITH (
  'connector' = 'jdbc', 'url' = '${serving_jdbc_url}', 'table-name' = 'set by each table',
  'username' = '${serving_jdbc_user}', 'password' = '${serving_jdbc_password}',
  'sink.buffer-flush.interval' = '1 s', 'sink.max-retries' = '10'
);
