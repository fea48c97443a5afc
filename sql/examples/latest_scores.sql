-- Example for `riskctl sql -f`: the ten riskiest scored loans in the lake by the champion (a bounded batch query).
SET 'execution.runtime-mode' = 'batch';
SELECT loan_id, trigger_kind, model_version, ROUND(probability, 4) AS pd, reason_codes
FROM lake.risk.scores
WHERE role IS DISTINCT FROM 'challenger'
ORDER BY probability DESC
LIMIT 10;
