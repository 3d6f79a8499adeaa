-- Replicas on one database. A cancel of a run that another replica executes
-- is recorded here; the replica executing the run claims (deletes) the row and
-- cancels the run with the same cause as a local cancel. Rows are few and
-- short-lived: one per pending cancel, looked up by run id.
CREATE TABLE run_cancels (
    run_id     TEXT NOT NULL PRIMARY KEY,
    reason     TEXT NOT NULL CHECK (reason IN ('cancelled', 'session_deleted')),
    created_at TEXT NOT NULL
) STRICT;
