-- Background runs wait PENDING for their job; the orphan sweep
-- (store.StalePendingRuns) looks for those that waited too long. This index
-- holds only PENDING runs, so it stays small (a run leaves it when a worker
-- claims it) and the sweep reads nothing else.
CREATE INDEX runs_pending_created_at ON runs (created_at) WHERE status = 'PENDING';
