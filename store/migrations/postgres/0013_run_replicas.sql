-- Crash recovery with several replicas: see the SQLite migration of the same
-- number.
ALTER TABLE runs ADD COLUMN replica_id TEXT NOT NULL DEFAULT '';

CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    seen_at    TIMESTAMPTZ NOT NULL
);
