-- Session settings of the risk job: UTC for every timestamp conversion, and idle Kafka partitions stop
-- holding back event time after flink.source_idle_timeout_s (loanrisk/settings.py says why not shorter).
-- No job-wide state retention: the submitted job gives each stateful operator its own
-- (jobs/state_retention.py), and in the SQL client a query's state is kept until the query stops.
SET 'table.local-time-zone' = 'UTC';
SET 'table.exec.source.idle-timeout' = '${source_idle_timeout}';
SET 'table.exec.state.ttl' = '0 ms';
