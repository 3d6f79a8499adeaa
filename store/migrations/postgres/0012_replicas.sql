-- Replicas on one database: see the SQLite migration of the same number.
CREATE TABLE run_cancels (
    run_id     TEXT PRIMARY KEY,
    reason     TEXT NOT NULL CHECK (reason IN ('cancelled', 'session_deleted')),
    created_at TIMESTAMPTZ NOT NULL
);
