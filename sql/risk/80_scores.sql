-- Scores: every scoring input through the scorer (${score_call}), with exposure in the reporting
-- currency (USD, FX table in contracts/fx.py), expected loss = PD x exposure x LGD (${lgd}), and
-- the grade band used by the aggregates.
-- The two inputs meet in one keyed step (a loan is scored once per trigger and event time) before the
-- scorer, so one Python operator takes both: Python operators hold back watermarks until their bundle
-- is done but pass an idle status on at once, so with one scorer per input an idle input would let
-- the risk windows close over re-scores still in the other scorer's bundle and drop them as late.
-- The same call scores the row with the shadow challengers (r.challengers, version -> probability), so that
-- they add no second scorer either; only the lake's INSERT below reads them.
CREATE TEMPORARY VIEW scored AS
SELECT trigger_kind, loan_id, customer_id, event_time, behaviour_as_of, product, region,
  COALESCE(grade, 'ungraded') AS grade_band, currency, amount_minor,
  s.r.probability AS probability, s.r.model_version AS model_version, s.r.reason_codes AS reason_codes,
  amount_minor * ${fx_usd_per_minor} AS exposure_usd,
  s.r.probability * amount_minor * ${fx_usd_per_minor} * ${lgd} AS expected_loss_usd,
  ${feature_names},
  'champion' AS role, s.r.challengers AS challengers
FROM (
  SELECT *, ${score_call} AS r
  FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY loan_id, trigger_kind, event_time ORDER BY proc_time) AS nth
    FROM (
      SELECT *, PROCTIME() AS proc_time
      FROM (
        SELECT * FROM application_scoring_input
        UNION ALL
        SELECT * FROM window_scoring_input
      )
    )
  )
  WHERE nth = 1
) AS s;

-- The first score of a loan at or above the alert threshold goes to the risk-alerts topic. The filter
-- comes after the de-duplication on purpose: a filter on the scorer's output before it makes the planner
-- run a second scorer for this branch instead of sharing the one scorer.
CREATE TEMPORARY VIEW risk_alerts AS
SELECT loan_id, customer_id, event_time, trigger_kind, model_version, probability, reason_codes, product, region
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY loan_id, high_risk ORDER BY proc_time) AS nth
  FROM (SELECT *, probability >= ${alert_threshold} AS high_risk, PROCTIME() AS proc_time FROM scored)
) WHERE nth = 1 AND high_risk;

CREATE TEMPORARY TABLE pg_loan_scores_latest (
  ${pg_loan_scores_latest_columns}
) WITH ('table-name' = '${pg_loan_scores_latest_table}',
        'sink.buffer-flush.interval' = '${serving_flush}', 'sink.buffer-flush.max-rows' = '500')
  LIKE serving_jdbc;

CREATE TEMPORARY TABLE risk_alerts_topic (
  loan_id STRING, customer_id STRING, trigger_time TIMESTAMP(3), trigger_kind STRING, model_version STRING,
  probability DOUBLE, reason_codes STRING, product STRING, region STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic_alerts}',
  'properties.bootstrap.servers' = '${kafka_bootstrap}',
  ${kafka_security}
  'properties.transaction.timeout.ms' = '900000',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'loanrisk-alerts',
  'key.format' = 'raw', 'key.fields' = 'loan_id', 'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601'
);

-- A shadow challenger's score of the same row: its probability and expected loss, no reason codes. It goes to
-- the lake only: serving, alerts and the risk windows read the champion's columns of `scored`. The UNNEST
-- reads the one scorer's result (a filter on it would make the planner run a second scorer); a row without
-- challengers unnests to nothing.
CREATE TEMPORARY VIEW challenger_scored AS
SELECT trigger_kind, loan_id, customer_id, event_time, behaviour_as_of, product, region, grade_band, currency,
  amount_minor, c.probability AS probability, c.model_version AS model_version,
  CAST(NULL AS STRING) AS reason_codes, exposure_usd, c.probability * exposure_usd * ${lgd} AS expected_loss_usd,
  ${feature_names},
  'challenger' AS role
FROM scored CROSS JOIN UNNEST(scored.challengers) AS c (model_version, probability);

INSERT INTO ${catalog_name}.${namespace}.scores
SELECT ${scores_select}
FROM scored
UNION ALL
SELECT ${scores_select}
FROM challenger_scored;

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
