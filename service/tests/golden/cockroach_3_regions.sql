ALTER DATABASE "ledger" SET PRIMARY REGION "us-east-1";
ALTER DATABASE "ledger" ADD REGION IF NOT EXISTS "eu-west-1";
ALTER DATABASE "ledger" ADD REGION IF NOT EXISTS "ap-southeast-1";
ALTER DATABASE "ledger" SURVIVE REGION FAILURE;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS home_crdb_region crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east-1' THEN 'us-east-1' WHEN 'eu-west-1' THEN 'eu-west-1' WHEN 'ap-southeast-1' THEN 'ap-southeast-1' ELSE 'us-east-1' END) STORED;
ALTER TABLE accounts SET LOCALITY REGIONAL BY ROW AS home_crdb_region;
ALTER TABLE transfers SET LOCALITY REGIONAL BY ROW;
ALTER TABLE idempotency_keys SET LOCALITY REGIONAL BY ROW;
ALTER TABLE region_state SET LOCALITY GLOBAL;
