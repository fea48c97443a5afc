-- Repeated event ids: valid messages whose event id was already seen (the copies 40_valid_events.sql
-- drops), counted per id and upserted to PostgreSQL, so every dropped duplicate is accounted for
-- (repeats = messages with the id - 1; kept for flink.dedup_retention_s, as the dedup keeps the id).
CREATE TEMPORARY VIEW repeated_events AS
SELECT source_topic, event_id, COUNT(*) - 1 AS repeats, MAX(ingested_at) AS last_seen_at
FROM (
  SELECT '${topic_applications}' AS source_topic, e.event_id AS event_id, ingested_at
  FROM checked_loan_applications WHERE reason IS NULL
  UNION ALL
  SELECT '${topic_transactions}' AS source_topic, e.event_id AS event_id, ingested_at
  FROM checked_transactions WHERE reason IS NULL
  UNION ALL
  SELECT '${topic_repayments}' AS source_topic, e.event_id AS event_id, ingested_at
  FROM checked_repayments WHERE reason IS NULL
)
GROUP BY source_topic, event_id
HAVING COUNT(*) > 1;

CREATE TEMPORARY TABLE pg_repeated_events (
  ${pg_repeated_events_columns}
) WITH ('table-name' = '${pg_repeated_events_table}') LIKE serving_jdbc;

INSERT INTO pg_repeated_events
SELECT ${pg_repeated_events_select} FROM repeated_events;
