-- Session settings of the risk job: UTC for every timestamp conversion, idle Kafka partitions do not
-- hold back event time, and duplicate-detection state expires after the configured TTL.
SET 'table.local-time-zone' = 'UTC';
SET 'table.exec.source.idle-timeout' = '5 s';
SET 'table.exec.state.ttl' = '${state_ttl}';
