-- Replicas on one database. A cancel of a run that another replica executes
-- is recorded here; the replica executing the run claims (deletes) the row and
-- cancels the run with the same cause as a local cancel. Rows are few and
-- short-lived: one per pending cancel, looked up by run id.
CREATE TABLE run_cancels (
    run_id     TEXT NOT NULL PRIMARY KEY,
    reason     TEXT NOT NULL CHECK (reason IN ('cancelled', 'session_deleted')),
    created_at TEXT NOT NULL
) STRICT;

-- The change feed of knowledge chunks: every write or deletion of a
-- document's chunks appends the document here, in the same transaction, so
-- that the embedded vector index of every replica replays the changes the
-- others made (it reloads each changed document's chunks). seq only grows:
-- AUTOINCREMENT never reuses a number, even after the last row is purged.
CREATE TABLE knowledge_changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    knowledge_id TEXT NOT NULL,
    document_id  TEXT NOT NULL,
    created_at   TEXT NOT NULL
) STRICT;

-- Serves purging the changes older than every replica's lag.
CREATE INDEX knowledge_changes_created_at ON knowledge_changes (created_at);
