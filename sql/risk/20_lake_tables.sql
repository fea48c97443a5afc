-- Iceberg tables of the lake: raw events (one per input topic), dead letters and the job's derived
-- tables, partitioned by day. Columns and partition columns are declared in contracts/tables.py (raw
-- and dead-letter columns from the event contracts), and so are the table properties
-- (contracts/table_sql.py: no column bounds for a column that names a person, so no manifest keeps a
-- customer id after an erasure); existing tables get them at every `riskctl job submit`, before the
-- job's writers read them (loanrisk/lake.py). Iceberg commits on every checkpoint (exactly once).
-- Writers are not hash-distributed by partition ('none'): they chain to the operator before them, saving
-- a shuffle of every row, and a live day's rows are spread over every writer; each writer may then write a
-- file to every day partition of a checkpoint (maintain_lake compacts them). On a replay of months that is
-- parallelism x days files per checkpoint: `flink.lake_distribution=hash` makes it one per day for the job
-- (docs/PERFORMANCE.md, "Files per checkpoint").
-- They are declared before the views so that each later file ends with the INSERTs writing its views.
-- Each SELECT list of an INSERT is rendered from the target table's declaration (contracts/tables.py), in
-- its column order, from the view's columns of the same name. The INSERTs join one statement set in file
-- order, and that order numbers the plan's nodes, which name the operators' state in savepoints: moving an
-- INSERT to another file, or a file to another place, needs the upgrade path in docs/RUNBOOK.md.
CREATE DATABASE IF NOT EXISTS ${catalog_name}.${namespace};

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.raw_loan_applications (
  ${raw_loan_applications_columns}
) PARTITIONED BY (${raw_loan_applications_partition})
  WITH (${raw_loan_applications_properties});

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.raw_transactions (
  ${raw_transactions_columns}
) PARTITIONED BY (${raw_transactions_partition})
  WITH (${raw_transactions_properties});

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.raw_repayments (
  ${raw_repayments_columns}
) PARTITIONED BY (${raw_repayments_partition})
  WITH (${raw_repayments_properties});

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.dead_letters (
  ${dead_letters_columns}
) PARTITIONED BY (${dead_letters_partition})
  WITH (${dead_letters_properties});

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.customer_behaviour_windows (
  ${customer_behaviour_windows_columns}
) PARTITIONED BY (${customer_behaviour_windows_partition})
  WITH (${customer_behaviour_windows_properties});

-- One row per scoring (trigger_kind 'application' or 'behaviour_window'), with the exact feature row scored.
CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.scores (
  ${scores_columns}
) PARTITIONED BY (${scores_partition})
  WITH (${scores_properties});

CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.risk_by_window (
  ${risk_by_window_columns}
) PARTITIONED BY (${risk_by_window_partition})
  WITH (${risk_by_window_properties});

-- Append-only outcome history: the row with the latest observed_until per loan is its outcome.
CREATE TABLE IF NOT EXISTS ${catalog_name}.${namespace}.loan_outcomes (
  ${loan_outcomes_columns}
) PARTITIONED BY (${loan_outcomes_partition})
  WITH (${loan_outcomes_properties});
