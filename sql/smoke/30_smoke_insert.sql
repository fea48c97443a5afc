-- Copy every event into the lake.
INSERT INTO ${catalog_name}.smoke.${smoke_table}
SELECT id, name, amount, CAST(event_time AS TIMESTAMP_LTZ(6)) FROM smoke_source;
