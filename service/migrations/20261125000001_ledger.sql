-- The ledger schema. Portable between PostgreSQL 15 and CockroachDB: UUID keys
-- from gen_random_uuid(), no sequences, no SERIAL. CockroachDB localities are
-- applied separately by `service migrate` (see service/src/db/cockroach.rs).

CREATE TABLE IF NOT EXISTS accounts (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    owner TEXT NOT NULL,
    balance BIGINT NOT NULL CHECK (balance >= 0),
    home_region TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS transfers (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    from_account UUID NOT NULL REFERENCES accounts (id),
    to_account UUID NOT NULL REFERENCES accounts (id),
    amount BIGINT NOT NULL CHECK (amount > 0),
    idempotency_key TEXT NOT NULL UNIQUE,
    served_by_region TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (from_account <> to_account)
);

-- One row per (operation, key): the request's fingerprint and the response
-- that was sent, so that a retry anywhere gets the same answer.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    operation TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response_status INT4 NOT NULL,
    response_body JSONB NOT NULL,
    served_by_region TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (operation, idempotency_key)
);

-- The data-plane gate. Written by the failover controller (with its fencing
-- epoch), read by every service instance at most a second stale. A missing
-- row means "not drained".
CREATE TABLE IF NOT EXISTS region_state (
    region TEXT PRIMARY KEY,
    drained BOOLEAN NOT NULL DEFAULT false,
    reason TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT '',
    fencing_epoch BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
