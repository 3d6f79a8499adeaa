-- The console's Spend page: see the SQLite migration. An index-only scan
-- needs every column the query reads in the index, so they are INCLUDEd.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS cost_unknown BOOLEAN NOT NULL DEFAULT false;

UPDATE runs SET tokens = COALESCE((metrics->>'total_tokens')::bigint, 0),
    cost_unknown = COALESCE(metrics->>'cost_unknown' = 'true', false)
WHERE metrics::text <> '{}';

CREATE INDEX IF NOT EXISTS runs_finished_spend ON runs (created_at)
    INCLUDE (type, component_id, user_id, cost, tokens, cost_unknown)
    WHERE parent_run_id = '' AND status NOT IN ('PENDING', 'RUNNING');
