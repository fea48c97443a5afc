-- Portfolio risk by segment (product, region, grade band): each loan counted once, at its latest champion score
-- (a shadow challenger's rows are for comparing models; ROLE is NULL on rows written before it existed).
-- Exposure and expected loss are in USD (EL = PD x exposure x LGD, as the Flink job computes it);
-- el_rate = expected loss / exposure, high_risk_share = share of loans with PD >= 0.5 (the alert threshold).
WITH latest AS (
  SELECT LOAN_ID, PRODUCT, REGION, GRADE_BAND, PROBABILITY, EXPOSURE_USD, EXPECTED_LOSS_USD
  FROM RISK_SCORES
  WHERE ROLE IS DISTINCT FROM 'challenger'
  QUALIFY ROW_NUMBER() OVER (PARTITION BY LOAN_ID ORDER BY TRIGGER_TIME DESC, TRIGGER_KIND DESC) = 1
)
SELECT PRODUCT, REGION, GRADE_BAND,
  COUNT(*) AS LOANS,
  SUM(EXPOSURE_USD) AS EXPOSURE_USD,
  AVG(PROBABILITY) AS MEAN_PD,
  MAX(PROBABILITY) AS MAX_PD,
  AVG(IFF(PROBABILITY >= 0.5, 1.0, 0.0)) AS HIGH_RISK_SHARE,
  SUM(EXPECTED_LOSS_USD) AS EXPECTED_LOSS_USD,
  SUM(EXPECTED_LOSS_USD) / NULLIF(SUM(EXPOSURE_USD), 0) AS EL_RATE
FROM latest
GROUP BY PRODUCT, REGION, GRADE_BAND
ORDER BY EXPECTED_LOSS_USD DESC, PRODUCT, REGION, GRADE_BAND;
