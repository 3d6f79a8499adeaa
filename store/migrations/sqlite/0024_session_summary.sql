-- Session summaries (issue 18): a session's running summary (AgentOS
-- SessionSummary: summary, topics, updated_at, and the last run folded into
-- it) as JSON, and that run as sortable text (fixed-width created_at, a
-- space, the run id) so that saving a summary is one conditional update that
-- never moves the point back.
ALTER TABLE sessions ADD COLUMN summary TEXT NOT NULL DEFAULT 'null';
ALTER TABLE sessions ADD COLUMN summary_through TEXT NOT NULL DEFAULT '';
