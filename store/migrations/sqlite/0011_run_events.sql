-- The events of each top-level run, numbered from 0 in the order its stream
-- sent them (team members' events included), so that a client that lost its
-- stream can resume it from the last index it saw, on any replica. When a
-- run's events are wanted (see run_streams below), the run service writes
-- them in batches while the run executes, and the last batch, terminal event
-- included, in the transaction that commits the run's final state.
--
-- One row holds one batch (events idx to last_idx, as a JSON array), not one
-- event: a row per flush interval rather than a row per content delta.
--
-- Events live as long as their run: they go with its session (ON DELETE
-- CASCADE), like the run's other rows.
CREATE TABLE run_events (
    run_id   TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    last_idx INTEGER NOT NULL,
    events   TEXT    NOT NULL,
    PRIMARY KEY (run_id, idx)
) STRICT;

-- Events are logged only when someone wants them: a replica asked to resume
-- the stream of a run that another replica executes records the request
-- here; the executing replica claims (deletes) the row within its poll
-- (250 ms, the poll of run_cancels) and logs the run's events from the first
-- on. A foreground run nobody resumes elsewhere writes nothing to
-- run_events. Rows are few and short-lived, looked up by run id.
CREATE TABLE run_streams (
    run_id     TEXT NOT NULL PRIMARY KEY,
    created_at TEXT NOT NULL
) STRICT;
