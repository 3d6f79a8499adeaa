-- The events of each top-level run, numbered from 0: see the SQLite migration
-- of the same number. payload is text holding JSON rather than jsonb: it is
-- only ever read back whole, and text skips jsonb's parse on every insert.
CREATE TABLE run_events (
    run_id  TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    type    TEXT    NOT NULL,
    payload TEXT    NOT NULL,
    PRIMARY KEY (run_id, idx)
);
