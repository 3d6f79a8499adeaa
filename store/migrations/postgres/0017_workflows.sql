-- Workflows (issue 16): sessions and runs of type 'workflow', and the
-- checkpoints of their steps.
ALTER TABLE sessions DROP CONSTRAINT sessions_type_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_type_check CHECK (type IN ('agent', 'team', 'workflow'));
ALTER TABLE runs DROP CONSTRAINT runs_type_check;
ALTER TABLE runs ADD CONSTRAINT runs_type_check CHECK (type IN ('agent', 'team', 'workflow'));
-- A workflow run waiting at an approval step is PAUSED.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'ERROR', 'CANCELLED', 'PAUSED'));

-- One row per step execution of a workflow run: a step, a parallel branch,
-- or a step of one loop iteration (path "loop[2]/step"). A step is written
-- RUNNING (attempts counted) before it executes and COMPLETED with its output
-- before the next one starts, so a resumed run skips what completed. An
-- approval step waiting for its decision is PAUSED.
CREATE TABLE workflow_steps (
    run_id     TEXT        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    path       TEXT        NOT NULL,
    seq        BIGINT      NOT NULL,
    iteration  INTEGER     NOT NULL DEFAULT 0,
    status     TEXT        NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED', 'ERROR', 'CANCELLED', 'PAUSED')),
    input      TEXT        NOT NULL DEFAULT '',
    output     JSONB       NOT NULL DEFAULT 'null',
    error      TEXT        NOT NULL DEFAULT '',
    attempts   INTEGER     NOT NULL DEFAULT 0,
    started_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, path)
);
