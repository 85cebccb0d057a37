-- The failover controller's own tables. Portable between PostgreSQL 15 and
-- CockroachDB: UUID keys from gen_random_uuid(), no sequences, no SERIAL, no
-- advisory locks. The `region_state` table (the drain flags) belongs to the
-- service's migrations; the controller only writes rows of it, fenced.

-- One row per lease name. The holder renews it well inside `expires_at`; a
-- new holder bumps `epoch`, which fences every write of the previous one.
CREATE TABLE IF NOT EXISTS failover_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    renewed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The latest verdict of each vantage point (controller replica) on each
-- region. Overwritten on every probe round; freshness is judged with the
-- database clock (`now() - observed_at`) so replica clocks never matter.
CREATE TABLE IF NOT EXISTS failover_votes (
    vantage TEXT NOT NULL,
    region TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('up', 'down')),
    consecutive INT8 NOT NULL DEFAULT 0,
    rtt_ms FLOAT8,
    last_error TEXT NOT NULL DEFAULT '',
    observed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (vantage, region)
);

-- Manual overrides. They outrank automation until they expire or are
-- cleared; rows are never deleted, so they double as history.
CREATE TABLE IF NOT EXISTS failover_overrides (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    kind TEXT NOT NULL CHECK (kind IN ('drain', 'undrain', 'freeze', 'unfreeze')),
    region TEXT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    cleared_at TIMESTAMPTZ,
    cleared_by TEXT
);

-- Append-only audit log: every decision and action with the votes, the rules
-- evaluated, the actor and the outcome. The controller never updates or
-- deletes a row of it.
CREATE TABLE IF NOT EXISTS failover_audit (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    controller_id TEXT NOT NULL,
    lease_epoch BIGINT NOT NULL DEFAULT 0,
    kind TEXT NOT NULL CHECK (kind IN ('decision', 'action', 'override', 'lease')),
    region TEXT,
    name TEXT NOT NULL,
    actor TEXT NOT NULL,
    outcome TEXT NOT NULL,
    votes JSONB NOT NULL DEFAULT '{}',
    rules JSONB NOT NULL DEFAULT '[]',
    detail TEXT NOT NULL DEFAULT ''
);

CREATE INDEX IF NOT EXISTS failover_audit_at ON failover_audit (at);
