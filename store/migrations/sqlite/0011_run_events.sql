-- The events of each top-level run, numbered from 0 in the order its stream
-- sent them (team members' events included), so that a client that lost its
-- stream can resume it from the last index it saw, on any replica. The run
-- service writes them in batches while the run executes, and the last batch,
-- terminal event included, in the transaction that commits the run's final
-- state.
--
-- One row holds one batch (events idx to last_idx, as a JSON array), not
-- one event: a run that finishes within the flush interval, as most do, adds
-- one row to its final commit rather than a row per content delta, which
-- keeps foreground runs as fast as before (see the run service).
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
