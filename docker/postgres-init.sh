#!/bin/sh
# Roles and databases of the compose stack, as `riskctl stack up` makes them (stack/services/postgres.py): the
# image's superuser stays `postgres`; the platform's writer role (CREATEDB only) owns the Iceberg JDBC catalog
# and the serving database, and the read-only role may only connect and read what the writer creates there.
# Each role has its own password from the environment (.env, made by `riskctl stack compose-env`); psql quotes
# them as literals, so no character of one can break a statement. Runs once, when the data volume is created.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v writer_password="$LOANRISK_POSTGRES__PASSWORD" \
  -v reader_password="$LOANRISK_POSTGRES__READER_PASSWORD" <<'SQL'
CREATE ROLE loanrisk LOGIN CREATEDB PASSWORD :'writer_password';
CREATE ROLE risk_reader LOGIN PASSWORD :'reader_password';
CREATE DATABASE iceberg_catalog OWNER loanrisk;
CREATE DATABASE risk_serving OWNER loanrisk;
GRANT CONNECT ON DATABASE risk_serving TO risk_reader;
\connect risk_serving
ALTER DEFAULT PRIVILEGES FOR ROLE loanrisk IN SCHEMA public GRANT SELECT ON TABLES TO risk_reader;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO loanrisk;
SQL
