-- Validation: every message gets the first rule it breaks (NULL when valid), derived from the
-- contracts (contracts/flink_sql.py): JSON object, required fields, types, ranges, enums, event time.
CREATE TEMPORARY VIEW checked_loan_applications AS
SELECT payload, src_partition, src_offset, ingested_at, event_time, ${loan_application_reason} AS reason
FROM kafka_loan_applications;

CREATE TEMPORARY VIEW checked_transactions AS
SELECT payload, src_partition, src_offset, ingested_at, event_time, ${transaction_reason} AS reason
FROM kafka_transactions;

CREATE TEMPORARY VIEW checked_repayments AS
SELECT payload, src_partition, src_offset, ingested_at, event_time, ${repayment_reason} AS reason
FROM kafka_repayments;
