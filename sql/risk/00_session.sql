-- Session settings of the risk job: UTC for every timestamp conversion, and idle Kafka partitions do not
-- hold back event time. No job-wide state retention: the submitted job gives each stateful operator its
-- own (jobs/state_retention.py), and in the SQL client a query's state is kept until the query stops.
SET 'table.local-time-zone' = 'UTC';
SET 'table.exec.source.idle-timeout' = '5 s';
SET 'table.exec.state.ttl' = '0 ms';
