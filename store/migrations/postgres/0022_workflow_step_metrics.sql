-- A workflow step's own usage (its agent's, team's or nested workflow's
-- runs, every attempt), as JSON event.Metrics: a run resumed after a pause
-- or a crash adds the usage of the steps it restores, so the workflow run's
-- stored metrics and cost are the whole run's, not its last execution's.
ALTER TABLE workflow_steps ADD COLUMN metrics JSONB NOT NULL DEFAULT '{}';
