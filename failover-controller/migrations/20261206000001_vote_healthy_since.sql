-- When the vantage point's current run of successful probes of the region
-- began (NULL while it fails or before its first success). The leader's
-- hold-down counts from when a majority has seen the region healthy, so a
-- region that recovered returns a hold-down after its first good probes,
-- and a new leader does not restart a hold-down that is under way.
ALTER TABLE failover_votes ADD COLUMN IF NOT EXISTS healthy_since TIMESTAMPTZ;
