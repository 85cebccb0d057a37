-- pgbench script: the SELECT of GET /v1/accounts/{id} (service/src/db/ledger.rs,
-- get_account), with an account drawn uniformly from the seeded set.
--
-- pgbench variables are numbers, so the account id is derived on the server
-- from the account number exactly as scripts/bench.sh seeded it:
-- md5('bench-account-' || n)::uuid (the file given to wrk lists the same ids
-- in the same order). That costs one md5 of a short string per statement.
\set n random(1, :accounts)
SELECT id, owner, principal, balance, home_region, created_at FROM accounts WHERE id = md5('bench-account-' || :n)::uuid;
