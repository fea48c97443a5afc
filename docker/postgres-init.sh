#!/bin/sh
# Databases of the compose stack: the Iceberg JDBC catalog and the serving tables, plus the read-only
# role with its own password from the environment (.env, made by `riskctl stack compose-env`); psql
# quotes it as a literal, so no character of it can break the statement.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v reader_password="$LOANRISK_POSTGRES__READER_PASSWORD" <<'SQL'
CREATE DATABASE iceberg_catalog OWNER loanrisk;
CREATE DATABASE risk_serving OWNER loanrisk;
CREATE ROLE risk_reader LOGIN PASSWORD :'reader_password';
GRANT CONNECT ON DATABASE risk_serving TO risk_reader;
SQL
