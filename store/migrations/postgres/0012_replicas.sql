-- Replicas on one database: see the SQLite migration of the same number.
CREATE TABLE run_cancels (
    run_id     TEXT PRIMARY KEY,
    reason     TEXT NOT NULL CHECK (reason IN ('cancelled', 'session_deleted')),
    created_at TIMESTAMPTZ NOT NULL
);

-- The change feed of knowledge chunks: see the SQLite migration of the same
-- number. Writers take a transaction-level advisory lock before appending, so
-- that seq order is commit order and a reader never skips a number that
-- commits late.
CREATE TABLE knowledge_changes (
    seq          BIGSERIAL PRIMARY KEY,
    knowledge_id TEXT NOT NULL,
    document_id  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX knowledge_changes_created_at ON knowledge_changes (created_at);
