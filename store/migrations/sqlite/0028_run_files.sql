-- Files sent with a run (issue 20 §5): their metadata here, their bytes in
-- the run files store under storage_key. They go with their run, and so
-- with their session.
CREATE TABLE run_files (
    id          TEXT NOT NULL PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- position orders a run's files as they were sent.
    position    INTEGER NOT NULL,
    session_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX run_files_session_id ON run_files (session_id, created_at);
CREATE INDEX run_files_run_id ON run_files (run_id);
