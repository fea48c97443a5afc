-- Validation: each message is parsed once by parse_event (jvm/functions), which returns the first
-- contract rule it breaks as `reason` (NULL when valid; rules and their order: contracts/validate.py)
-- and the typed fields as the row `e`. The spec literal is derived from contracts/events.py.
CREATE TEMPORARY VIEW checked_loan_applications AS
SELECT payload, src_partition, src_offset, ingested_at, event_time, e.reason AS reason, e
FROM (SELECT *, parse_event(payload, ingested_at, '${loan_application_spec}') AS e FROM kafka_loan_applications);

CREATE TEMPORARY VIEW checked_transactions AS
SELECT payload, src_partition, src_offset, ingested_at, event_time, e.reason AS reason, e
FROM (SELECT *, parse_event(payload, ingested_at, '${transaction_spec}') AS e FROM kafka_transactions);

CREATE TEMPORARY VIEW checked_repayments AS
SELECT payload, src_partition, src_offset, ingested_at, event_time, e.reason AS reason, e
FROM (SELECT *, parse_event(payload, ingested_at, '${repayment_spec}') AS e FROM kafka_repayments);
