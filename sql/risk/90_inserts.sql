-- The job's sinks, submitted together as one statement set.
INSERT INTO ${catalog_name}.${namespace}.raw_loan_applications
SELECT ${loan_application_names}, CAST(ingested_at AS TIMESTAMP_LTZ(6)), CAST(event_time AS DATE)
FROM valid_loan_applications;

INSERT INTO ${catalog_name}.${namespace}.raw_transactions
SELECT ${transaction_names}, CAST(ingested_at AS TIMESTAMP_LTZ(6)), CAST(event_time AS DATE)
FROM valid_transactions;

INSERT INTO ${catalog_name}.${namespace}.raw_repayments
SELECT ${repayment_names}, CAST(ingested_at AS TIMESTAMP_LTZ(6)), CAST(event_time AS DATE)
FROM valid_repayments;

INSERT INTO ${catalog_name}.${namespace}.dead_letters
SELECT dlq_id, source_topic, source_partition, source_offset, reason, payload, payload_bytes, received_at,
       CAST(received_at AS DATE)
FROM dead_letters;

INSERT INTO dead_letter_topic
SELECT dlq_id, source_topic, source_partition, source_offset, reason, payload, payload_bytes,
       CAST(received_at AS TIMESTAMP_LTZ(3))
FROM dead_letters;
