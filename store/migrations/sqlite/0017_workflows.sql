-- Workflows (issue 16): sessions and runs of type 'workflow', and the
-- checkpoints of their steps.
--
-- SQLite cannot change a CHECK constraint in place, and rebuilding sessions
-- and runs would cascade-delete their runs and run_events (dropping a
-- referenced table deletes its rows first). Widening a CHECK leaves every
-- stored row valid and the file format unchanged, so the constraint text is
-- edited in the schema, the procedure SQLite documents for it
-- (https://sqlite.org/lang_altertable.html, "making other kinds of table
-- schema changes"); RESET makes this connection read the schema again, and
-- the CREATE TABLE below changes the schema cookie so other connections do.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, 'CHECK (type IN (''agent'', ''team''))', 'CHECK (type IN (''agent'', ''team'', ''workflow''))')
WHERE type = 'table' AND name IN ('sessions', 'runs');
-- A workflow run waiting at an approval step is PAUSED.
UPDATE sqlite_schema
SET sql = replace(sql, 'CHECK (status IN (''PENDING'', ''RUNNING'', ''COMPLETED'', ''ERROR'', ''CANCELLED''))',
    'CHECK (status IN (''PENDING'', ''RUNNING'', ''COMPLETED'', ''ERROR'', ''CANCELLED'', ''PAUSED''))')
WHERE type = 'table' AND name = 'runs';
PRAGMA writable_schema = RESET;

-- One row per step execution of a workflow run: a step, a parallel branch,
-- or a step of one loop iteration (path "loop[2]/step"). A step is written
-- RUNNING (attempts counted) before it executes and COMPLETED with its output
-- before the next one starts, so a resumed run skips what completed. An
-- approval step waiting for its decision is PAUSED.
CREATE TABLE workflow_steps (
    run_id     TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    path       TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    iteration  INTEGER NOT NULL DEFAULT 0,
    status     TEXT    NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED', 'ERROR', 'CANCELLED', 'PAUSED')),
    input      TEXT    NOT NULL DEFAULT '',
    output     TEXT    NOT NULL DEFAULT 'null',
    error      TEXT    NOT NULL DEFAULT '',
    attempts   INTEGER NOT NULL DEFAULT 0,
    started_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (run_id, path)
) STRICT;
