-- Authentication and ownership. Portable between PostgreSQL 15 and
-- CockroachDB; the one statement that is not (dropping the old global
-- uniqueness of transfers.idempotency_key) is run by `service migrate`
-- after the migrations, per dialect (service/src/db/mod.rs).

-- API keys: the prefix is looked up, the secret is stored only as its
-- SHA-256 (it is 256 random bits, so a slow password hash would add cost
-- and no safety). Revoked keys keep their row, for the audit trail.
CREATE TABLE IF NOT EXISTS api_keys (
    prefix TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    principal TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);

-- Every account belongs to a principal; rows from before have the empty
-- principal, which no credential can carry (only admins see them).
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS principal TEXT NOT NULL DEFAULT '';
-- Balances stay exact in an IEEE double (JSON clients): at most 2^53 - 1.
ALTER TABLE accounts ADD CONSTRAINT accounts_balance_limit CHECK (balance <= 9007199254740991);

-- Idempotency keys are scoped to the principal that sent them.
ALTER TABLE transfers ADD COLUMN IF NOT EXISTS principal TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX IF NOT EXISTS transfers_principal_idempotency_key ON transfers (principal, idempotency_key);
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS principal TEXT NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey,
    ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (principal, operation, idempotency_key);
