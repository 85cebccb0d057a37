SELECT region FROM [SHOW REGIONS FROM CLUSTER];
SELECT region, "primary" FROM [SHOW REGIONS FROM DATABASE {database}];
SELECT survival_goal FROM [SHOW SURVIVAL GOAL FROM DATABASE {database}];
SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'accounts' AND column_name = 'home_crdb_region';
SELECT table_name, locality FROM [SHOW TABLES] WHERE schema_name = 'public' AND locality IS NOT NULL;
