-- Databases of the compose stack: the Iceberg JDBC catalog and the serving tables, plus the reader role.
CREATE DATABASE iceberg_catalog OWNER loanrisk;
CREATE DATABASE risk_serving OWNER loanrisk;
CREATE ROLE risk_reader LOGIN PASSWORD 'risk_reader';
GRANT CONNECT ON DATABASE risk_serving TO risk_reader;
