-- Validation: each message is parsed once by parse_event (jvm/functions), which returns the first
-- contract rule it breaks as `reason` (NULL when valid; rules and their order: contracts/validate.py)
-- and the typed fields as the row `e`. The spec literal is derived from contracts/events.py.
-- Watermark heartbeats (contracts/heartbeat.py: an event time sent to every partition at the end of a
-- replay) are dropped here, before parsing: the source has already taken their event time for the
-- watermark, and everything downstream reads these views, so none reaches a sink, a score or a window.
CREATE TEMPORARY VIEW checked_loan_applications AS
SELECT payload, src_partition, src_offset, ingested_at, event_time, e.reason AS reason, e
FROM (SELECT *, parse_event(payload, ingested_at, '${loan_application_spec}') AS e FROM kafka_loan_applications
      WHERE NOT ${payload_is_heartbeat});

CREATE TEMPORARY VIEW checked_transactions AS
SELECT payload, src_partition, src_offset, ingested_at, event_time, e.reason AS reason, e
FROM (SELECT *, parse_event(payload, ingested_at, '${transaction_spec}') AS e FROM kafka_transactions
      WHERE NOT ${payload_is_heartbeat});

CREATE TEMPORARY VIEW checked_repayments AS
SELECT payload, src_partition, src_offset, ingested_at, event_time, e.reason AS reason, e
FROM (SELECT *, parse_event(payload, ingested_at, '${repayment_spec}') AS e FROM kafka_repayments
      WHERE NOT ${payload_is_heartbeat});

-- The valid messages' ids, event time and typed row: the de-duplication's input (40_valid_events.sql).
CREATE TEMPORARY VIEW accepted_loan_applications AS
SELECT e.event_id AS event_id, e, event_time FROM checked_loan_applications WHERE reason IS NULL;

CREATE TEMPORARY VIEW accepted_transactions AS
SELECT e.event_id AS event_id, e, event_time FROM checked_transactions WHERE reason IS NULL;

CREATE TEMPORARY VIEW accepted_repayments AS
SELECT e.event_id AS event_id, e, event_time FROM checked_repayments WHERE reason IS NULL;
