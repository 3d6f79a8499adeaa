-- Background runs are stored PENDING until a worker claims them. SQLite
-- cannot change a CHECK constraint in place, so runs is rebuilt with the
-- new status allowed, its columns (those of 0001 plus refs, latency_us and
-- partial from 0002, 0004 and 0009) and indexes as they were. No table
-- references runs, so dropping the old one cascades nowhere.
CREATE TABLE runs_new (
    id            TEXT NOT NULL PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    parent_run_id TEXT NOT NULL DEFAULT '',
    component_id  TEXT NOT NULL,
    type          TEXT NOT NULL CHECK (type IN ('agent', 'team')),
    user_id       TEXT NOT NULL DEFAULT '',
    input         TEXT NOT NULL DEFAULT '',
    content       TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'ERROR', 'CANCELLED')),
    error         TEXT NOT NULL DEFAULT '',
    tools         TEXT NOT NULL DEFAULT 'null',
    messages      TEXT NOT NULL DEFAULT 'null',
    metrics       TEXT NOT NULL DEFAULT '{}',
    model         TEXT NOT NULL DEFAULT '',
    provider      TEXT NOT NULL DEFAULT '',
    spec_version  TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    refs          TEXT NOT NULL DEFAULT '[]',
    latency_us    INTEGER,
    partial       INTEGER NOT NULL DEFAULT 0 CHECK (partial IN (0, 1))
) STRICT;

INSERT INTO runs_new (id, session_id, parent_run_id, component_id, type, user_id, input, content, status, error,
    tools, messages, metrics, model, provider, spec_version, created_at, updated_at, refs, latency_us, partial)
SELECT id, session_id, parent_run_id, component_id, type, user_id, input, content, status, error,
    tools, messages, metrics, model, provider, spec_version, created_at, updated_at, refs, latency_us, partial
FROM runs;

DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;

CREATE INDEX runs_session_id_created_at ON runs (session_id, created_at);
CREATE INDEX runs_status_running ON runs (status) WHERE status = 'RUNNING';
CREATE INDEX runs_finished_created_at ON runs (created_at, status, latency_us, user_id)
    WHERE parent_run_id = '' AND latency_us IS NOT NULL;

-- Idempotency keys of run requests, per user: a request repeated with the
-- same key and body gets the run the first one made.
CREATE TABLE idempotency_keys (
    user_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;
