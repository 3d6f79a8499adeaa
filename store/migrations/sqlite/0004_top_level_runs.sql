-- Top-level runs (those users started, not team members' runs) by creation
-- time, for the console's overview: the newest runs (DB.RecentRuns) and run
-- activity over time (DB.RunActivity), for all users and for one.
--
-- latency_us is a run's latency, updated_at - created_at in microseconds
-- (never negative), NULL while it is RUNNING. The store sets it wherever a run
-- ends: FinishRun computes it in Go, crash recovery at Open in SQL as the
-- backfill below does (timestamps are "2006-01-02T15:04:05.000000Z": whole
-- seconds through unixepoch, whose own fractions stop at milliseconds, plus
-- the microsecond digits). SQLite's date functions cost far more per row than
-- the rest of RunActivity's aggregation, so it reads the stored value.
--
-- The indexes are shaped so a run's writes touch each of them once, never
-- to rewrite an entry, because every index page a transaction changes is one
-- more WAL frame at its commit (covering indexes that FinishRun rewrote cost
-- 10-17% of HTTP run throughput, and even an index written once per run
-- costs a few percent at concurrency 1):
--
-- runs_finished_created_at holds finished top-level runs (parent_run_id =
-- '', not team members'; latency_us set) with everything RunActivity
-- aggregates, so it never opens the table rows, whose messages make them
-- large. Only FinishRun writes to it, once, next to the newest entries. The
-- runs still RUNNING come from the index of running runs (migration 0001):
-- there are few of them. RecentRuns merges the newest of both.

ALTER TABLE runs ADD COLUMN latency_us INTEGER;

UPDATE runs SET latency_us = max(0,
    (unixepoch(substr(updated_at, 1, 19)) - unixepoch(substr(created_at, 1, 19))) * 1000000
    + CAST(substr(updated_at, 21, 6) AS INTEGER) - CAST(substr(created_at, 21, 6) AS INTEGER))
WHERE status <> 'RUNNING';

CREATE INDEX runs_finished_created_at ON runs (created_at, status, latency_us, user_id)
    WHERE parent_run_id = '' AND latency_us IS NOT NULL;
