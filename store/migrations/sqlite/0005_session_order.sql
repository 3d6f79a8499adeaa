-- Sessions in the orders lists use (GET /sessions, the console's sessions
-- page), so a page is read from an index instead of sorting every session.
CREATE INDEX sessions_updated_at ON sessions (updated_at, id);
CREATE INDEX sessions_created_at ON sessions (created_at, id);
