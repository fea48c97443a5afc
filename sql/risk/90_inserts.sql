-- The job's sinks, submitted together as one statement set. Each SELECT list is rendered from the target
-- table's declaration (contracts/tables.py), in its column order, from the view's columns of the same name.
INSERT INTO ${catalog_name}.${namespace}.raw_loan_applications
SELECT ${raw_loan_applications_select}
FROM valid_loan_applications;

INSERT INTO ${catalog_name}.${namespace}.raw_transactions
SELECT ${raw_transactions_select}
FROM valid_transactions;

INSERT INTO ${catalog_name}.${namespace}.raw_repayments
SELECT ${raw_repayments_select}
FROM valid_repayments;

INSERT INTO ${catalog_name}.${namespace}.dead_letters
SELECT ${dead_letters_select}
FROM dead_letters;

INSERT INTO dead_letter_topic
SELECT dlq_id, source_topic, source_partition, source_offset, reason, payload, payload_bytes,
       CAST(received_at AS TIMESTAMP_LTZ(3))
FROM dead_letters;

INSERT INTO ${catalog_name}.${namespace}.customer_behaviour_windows
SELECT ${customer_behaviour_windows_select}
FROM customer_behaviour_windows;

INSERT INTO pg_customer_behaviour_windows
SELECT ${pg_customer_behaviour_windows_select}
FROM customer_behaviour_windows;

INSERT INTO pg_loan_applications_active
SELECT ${pg_loan_applications_active_select}
FROM application_features;

INSERT INTO ${catalog_name}.${namespace}.scores
SELECT ${scores_select}
FROM scored;

-- A row the scorer left unscored (no model loaded) is upserted too, with NULL probability: the serving row
-- says the latest trigger was not scored. No filter here: a filter on the scorer's output makes the
-- planner run a second scorer for this sink instead of sharing the one scorer.
INSERT INTO pg_loan_scores_latest
SELECT ${pg_loan_scores_latest_select}
FROM scored;

INSERT INTO risk_alerts_topic
SELECT loan_id, customer_id, CAST(event_time AS TIMESTAMP_LTZ(3)), trigger_kind, model_version, probability,
  reason_codes, product, region
FROM risk_alerts;

INSERT INTO ${catalog_name}.${namespace}.risk_by_window
SELECT ${risk_by_window_select}
FROM risk_by_window;

INSERT INTO pg_risk_by_window
SELECT ${pg_risk_by_window_select}
FROM risk_by_window;

INSERT INTO pg_repayments_by_window
SELECT ${pg_repayments_by_window_select}
FROM repayments_by_window;

INSERT INTO ${catalog_name}.${namespace}.loan_outcomes
SELECT ${loan_outcomes_select}
FROM loan_outcomes;

INSERT INTO pg_loan_outcomes
SELECT ${pg_loan_outcomes_select}
FROM loan_outcomes;
