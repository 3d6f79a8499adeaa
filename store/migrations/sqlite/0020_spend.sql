-- The console's Spend page (issue 17) sums the cost and tokens of a window's
-- top-level runs by day, component and user. Reading them out of the metrics
-- JSON meant reading every run of the window whole (their messages make rows
-- large): 0.55 s for 100,000 runs. tokens (the run's total tokens) and
-- cost_unknown (1 when some model call had no price) are set by FinishRun
-- with cost, and runs_finished_spend covers the query, so it reads index
-- entries only. Like runs_finished_created_at (migration 0004) it holds
-- finished runs only, so FinishRun writes its entry once and never rewrites
-- it; a running run has no cost yet.
ALTER TABLE runs ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cost_unknown INTEGER NOT NULL DEFAULT 0;

UPDATE runs SET tokens = COALESCE(json_extract(metrics, '$.total_tokens'), 0),
    cost_unknown = CASE WHEN json_extract(metrics, '$.cost_unknown') THEN 1 ELSE 0 END
WHERE metrics <> '{}';

-- SQLite covers a query with an index only if the index holds every column
-- the query names, those of the partial index's WHERE too: hence latency_us
-- and parent_run_id (always '' here, so they cost a few bytes an entry).
-- The query names the index (INDEXED BY): without statistics the planner
-- prefers runs_finished_created_at, whose rows it must then read.
CREATE INDEX runs_finished_spend ON runs (created_at, type, component_id, user_id, cost, tokens, cost_unknown, latency_us, parent_run_id)
    WHERE parent_run_id = '' AND latency_us IS NOT NULL;
