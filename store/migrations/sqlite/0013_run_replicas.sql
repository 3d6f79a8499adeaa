-- Crash recovery with several replicas on one database. Each run records the
-- replica executing it (set when it becomes RUNNING; '' for runs stored
-- before this migration and for PENDING ones), and each replica keeps a
-- heartbeat row while it serves. Recovery fails a RUNNING run only when its
-- replica is this one from a previous life or its heartbeat has gone stale,
-- instead of every RUNNING run whenever any process opens the database.
ALTER TABLE runs ADD COLUMN replica_id TEXT NOT NULL DEFAULT '';

CREATE TABLE replicas (
    id         TEXT NOT NULL PRIMARY KEY,
    started_at TEXT NOT NULL,
    seen_at    TEXT NOT NULL
) STRICT;
