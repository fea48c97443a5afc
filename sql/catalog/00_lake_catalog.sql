-- The Iceberg lake: JDBC catalog in PostgreSQL, data files on the S3 endpoint (S3FileIO).
-- Same catalog name as pyiceberg's SqlCatalog, since the name is stored in every catalog row.
-- Empty keys and token are unset for S3FileIO, which then takes the AWS SDK's default credential chain.
CREATE CATALOG ${catalog_name} WITH (
  'type' = 'iceberg',
  'catalog-impl' = 'org.apache.iceberg.jdbc.JdbcCatalog',
  'uri' = '${catalog_jdbc_url}',
  'jdbc.user' = '${catalog_jdbc_user}',
  'jdbc.password' = '${catalog_jdbc_password}',
  'jdbc.schema-version' = 'V1',
  'warehouse' = '${warehouse}',
  'io-impl' = 'org.apache.iceberg.aws.s3.S3FileIO',
  's3.endpoint' = '${s3_endpoint}',
  's3.path-style-access' = 'true',
  's3.access-key-id' = '${s3_access_key_id}',
  's3.secret-access-key' = '${s3_secret_access_key}',
  's3.session-token' = '${s3_session_token}',
  'client.region' = '${s3_region}'
);
