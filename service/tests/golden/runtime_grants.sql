GRANT SELECT, INSERT, UPDATE ON TABLE accounts TO "service";
GRANT SELECT, INSERT ON TABLE transfers, idempotency_keys TO "service";
GRANT SELECT ON TABLE region_state TO "service";
GRANT SELECT ON TABLE api_keys TO "service";
GRANT SELECT ON TABLE _sqlx_migrations TO "service";
