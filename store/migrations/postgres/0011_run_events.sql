-- The events of each top-level run, in batches: see the SQLite migration of
-- the same number. events is text holding a JSON array rather than jsonb:
-- it is only ever read back whole, and text skips jsonb's parse on every
-- insert.
CREATE TABLE run_events (
    run_id   TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    last_idx INTEGER NOT NULL,
    events   TEXT    NOT NULL,
    PRIMARY KEY (run_id, idx)
);

-- Stream requests: see the SQLite migration of the same number.
CREATE TABLE run_streams (
    run_id     TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);
