-- The console's Spend page (issue 17) sums the cost and tokens of a window's
-- top-level runs by day, component and user. Reading them out of the metrics
-- JSON meant reading every run of the window whole (their messages make rows
-- large): 0.55 s for 100,000 runs. tokens (the run's total tokens) and
-- cost_unknown (1 when some model call had no price) are set by FinishRun
-- with cost, and runs_finished_spend covers the query, so it reads index
-- entries only.
ALTER TABLE runs ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cost_unknown INTEGER NOT NULL DEFAULT 0;

UPDATE runs SET tokens = COALESCE(json_extract(metrics, '$.total_tokens'), 0),
    cost_unknown = CASE WHEN json_extract(metrics, '$.cost_unknown') THEN 1 ELSE 0 END
WHERE metrics <> '{}';

-- The index holds runs that are not PENDING or RUNNING: a run's entry is
-- written when it ends (or pauses), with its cost, and never rewritten. Its
-- WHERE differs from runs_finished_created_at's (latency_us IS NOT NULL) so
-- the planner never takes one for the other. SQLite covers a query with an
-- index only if the index holds every column the query names, those of the
-- partial index's WHERE too (but for column = constant): hence status. The
-- query names the index (INDEXED BY): without statistics the planner would
-- rather read the rows through an index on created_at alone.
CREATE INDEX runs_finished_spend ON runs (created_at, type, component_id, user_id, cost, tokens, cost_unknown, status)
    WHERE parent_run_id = '' AND status NOT IN ('PENDING', 'RUNNING');
