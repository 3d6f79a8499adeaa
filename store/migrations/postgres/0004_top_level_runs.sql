-- Top-level runs by creation time, and each run's latency in microseconds
-- (latency_us, NULL while RUNNING): see the SQLite migration of the same
-- number for why the indexes have these shapes. runs_finished_created_at
-- includes what RunActivity reads, for index-only scans; reading latency_us
-- spares it the interval arithmetic on every run.
--
-- The UPDATE rewrites every finished run in one transaction, which is heavy
-- on a large table. To spread it out, add the column and run the same UPDATE
-- by hand in batches (adding "AND id IN (SELECT id FROM runs WHERE latency_us IS NULL
-- AND status <> 'RUNNING' LIMIT 10000)") before upgrading: this migration
-- then only adds the column if needed and skips the runs already filled in.

ALTER TABLE runs ADD COLUMN IF NOT EXISTS latency_us BIGINT;

UPDATE runs SET latency_us = GREATEST(0, CAST(EXTRACT(EPOCH FROM updated_at - created_at) * 1000000 AS BIGINT))
WHERE status <> 'RUNNING' AND latency_us IS NULL;

CREATE INDEX IF NOT EXISTS runs_finished_created_at ON runs (created_at)
    INCLUDE (status, latency_us, user_id) WHERE parent_run_id = '' AND latency_us IS NOT NULL;
