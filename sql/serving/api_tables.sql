-- PostgreSQL tables of the scoring API (scoring_api/), applied when it first reaches the serving database
-- and by `riskctl api-key`: one hashed key per client, and the answer kept per Idempotency-Key. Declared in
-- contracts/tables.py (API_TABLES), in their own schema so the read-only role's grant on public never
-- reaches them.
${api_keys_postgres};

-- A key is found by its public id; two clients never share one.
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_key_id ON ${api_keys_table} (key_id);

${api_idempotency_postgres};

-- Expired answers are deleted by the API as it goes; this finds them without reading the whole table.
CREATE INDEX IF NOT EXISTS api_idempotency_expires_at ON ${api_idempotency_table} (expires_at);
