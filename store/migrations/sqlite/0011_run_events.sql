-- The events of each top-level run, numbered from 0 in the order its stream
-- sent them (team members' events included), so that a client that lost its
-- stream can resume it from the last index it saw, on any replica. The run
-- service writes them in batches while the run executes, and the last batch,
-- terminal event included, before the run's final state is committed.
--
-- Events live as long as their run: they go with its session (ON DELETE
-- CASCADE), like the run's other rows. payload is the event as JSON, read
-- back whole; nothing queries inside it.
CREATE TABLE run_events (
    run_id  TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    type    TEXT    NOT NULL,
    payload TEXT    NOT NULL,
    PRIMARY KEY (run_id, idx)
) STRICT, WITHOUT ROWID;
