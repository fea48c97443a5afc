-- Example for `riskctl sql -f`: the ten riskiest scored loans in the lake (a bounded batch query).
SET 'execution.runtime-mode' = 'batch';
SELECT loan_id, trigger_kind, model_version, ROUND(probability, 4) AS pd, reason_codes
FROM lake.risk.scores
ORDER BY probability DESC
LIMIT 10;
