-- Sessions and their runs, behind the AgentOS-compatible session API.
--
-- Timestamps are UTC text of fixed width with microseconds
-- ("2006-01-02T15:04:05.000000Z"): text order is time order, so indexes and
-- ORDER BY work on them directly, and SQLite's date functions understand them.
-- JSON columns hold encoding/json output. STRICT makes SQLite reject values of
-- the wrong type instead of silently storing them.

CREATE TABLE sessions (
    id           TEXT NOT NULL PRIMARY KEY,
    type         TEXT NOT NULL CHECK (type IN ('agent', 'team')),
    component_id TEXT NOT NULL,
    user_id      TEXT NOT NULL DEFAULT '',
    name         TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL DEFAULT 'null',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;

CREATE INDEX sessions_user_id_updated_at ON sessions (user_id, updated_at);
CREATE INDEX sessions_component_id_updated_at ON sessions (component_id, updated_at);

CREATE TABLE runs (
    id            TEXT NOT NULL PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    parent_run_id TEXT NOT NULL DEFAULT '',
    component_id  TEXT NOT NULL,
    type          TEXT NOT NULL CHECK (type IN ('agent', 'team')),
    user_id       TEXT NOT NULL DEFAULT '',
    input         TEXT NOT NULL DEFAULT '',
    content       TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED', 'ERROR', 'CANCELLED')),
    error         TEXT NOT NULL DEFAULT '',
    tools         TEXT NOT NULL DEFAULT 'null',
    messages      TEXT NOT NULL DEFAULT 'null',
    metrics       TEXT NOT NULL DEFAULT '{}',
    model         TEXT NOT NULL DEFAULT '',
    provider      TEXT NOT NULL DEFAULT '',
    spec_version  TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;

-- Serves listing a session's runs, history, run counts and the cascade delete.
CREATE INDEX runs_session_id_created_at ON runs (session_id, created_at);

-- Only RUNNING runs are ever looked up by status (crash recovery at startup)
-- and few are in flight at once: a partial index stays tiny, and finishing a
-- run drops its entry instead of rewriting one in an index over every run.
CREATE INDEX runs_status_running ON runs (status) WHERE status = 'RUNNING';
