-- pgbench script: the transaction of POST /v1/transfers
-- (service/src/db/ledger.rs: run_idempotent + transfer, inside
-- Transactor::serializable), statement for statement:
--   idempotency-key lookup, both rows locked in id order, one UPDATE for the
--   debit and the credit, the transfer row (RETURNING id, created_at), the
--   stored response with the key, COMMIT.
-- Two distinct accounts drawn uniformly from the seeded set; a new key per
-- transaction (random, plus the client id in the low digits, so two clients
-- never share one). Serialization failures (40001) and deadlocks are retried
-- by pgbench --max-tries, as the service retries them.
\set a random(1, :accounts)
\set b random(1, :accounts - 1)
\set b case when :b >= :a then :b + 1 else :b end
\set key random(10000000000000, 99999999999999) * 10000 + :client_id
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE principal = 'bench' AND operation = 'transfer' AND idempotency_key = :key;
SELECT id, balance, principal FROM accounts WHERE id = md5('bench-account-' || :a)::uuid OR id = md5('bench-account-' || :b)::uuid ORDER BY id FOR UPDATE;
UPDATE accounts SET balance = CASE WHEN id = md5('bench-account-' || :a)::uuid THEN balance - 1 ELSE balance + 1 END WHERE id = md5('bench-account-' || :a)::uuid OR id = md5('bench-account-' || :b)::uuid;
INSERT INTO transfers (from_account, to_account, amount, idempotency_key, principal, served_by_region) VALUES (md5('bench-account-' || :a)::uuid, md5('bench-account-' || :b)::uuid, 1, :key, 'bench', 'us-east-1') RETURNING id AS t_id, created_at AS t_created_at \gset
INSERT INTO idempotency_keys (principal, operation, idempotency_key, request_hash, response_status, response_body, served_by_region) VALUES ('bench', 'transfer', :key, '4f1c3b0e9d2a7c6b5e8f0a1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f3', 201, jsonb_build_object('id', :t_id::text, 'from', md5('bench-account-' || :a)::uuid, 'to', md5('bench-account-' || :b)::uuid, 'amount', 1, 'served_by_region', 'us-east-1', 'created_at', :t_created_at::text), 'us-east-1');
COMMIT;
