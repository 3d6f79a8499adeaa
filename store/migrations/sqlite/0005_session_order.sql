-- Sessions newest first, as lists show them by default (GET /sessions, the
-- console's sessions page): a page is read from this index instead of
-- sorting every session. Other orders (created_at, name) still sort; an
-- index for each would cost every run's writes.
CREATE INDEX sessions_updated_at ON sessions (updated_at, id);
