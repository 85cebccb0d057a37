ALTER DATABASE "ledger" SET PRIMARY REGION "aws-us-east-1";
ALTER DATABASE "ledger" ADD REGION IF NOT EXISTS "aws-eu-west-1";
ALTER DATABASE "ledger" ADD REGION IF NOT EXISTS "aws-ap-southeast-1";
ALTER DATABASE "ledger" SURVIVE REGION FAILURE;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS home_crdb_region crdb_internal_region NOT NULL AS (CASE home_region WHEN 'us-east-1' THEN 'aws-us-east-1' WHEN 'eu-west-1' THEN 'aws-eu-west-1' WHEN 'ap-southeast-1' THEN 'aws-ap-southeast-1' ELSE 'aws-us-east-1' END) STORED;
ALTER TABLE accounts SET LOCALITY REGIONAL BY ROW AS home_crdb_region;
ALTER TABLE transfers SET LOCALITY REGIONAL BY ROW;
ALTER TABLE idempotency_keys SET LOCALITY REGIONAL BY ROW;
ALTER TABLE region_state SET LOCALITY GLOBAL;
