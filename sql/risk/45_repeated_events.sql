-- Repeated event ids: the valid messages 40_valid_events.sql drops because their id came before, upserted
-- to PostgreSQL per id with the copies dropped so far (repeats = messages with the id - 1), so every
-- dropped duplicate is accounted for. The count is first_seen's, from the de-duplication's own state:
-- it holds while the id does (flink.dedup_retention_s). Each copy upserts the row again, the latest
-- copy's count and time winning.
CREATE TEMPORARY VIEW repeated_events AS
SELECT '${topic_applications}' AS source_topic, event_id, seen_before AS repeats, e.ingested_at AS last_seen_at
FROM unique_loan_applications WHERE seen_before > 0
UNION ALL
SELECT '${topic_transactions}' AS source_topic, event_id, seen_before AS repeats, e.ingested_at AS last_seen_at
FROM unique_transactions WHERE seen_before > 0
UNION ALL
SELECT '${topic_repayments}' AS source_topic, event_id, seen_before AS repeats, e.ingested_at AS last_seen_at
FROM unique_repayments WHERE seen_before > 0;

CREATE TEMPORARY TABLE pg_repeated_events (
  ${pg_repeated_events_columns}
) WITH ('table-name' = '${pg_repeated_events_table}') LIKE serving_jdbc;

INSERT INTO pg_repeated_events
SELECT ${pg_repeated_events_select} FROM repeated_events;
