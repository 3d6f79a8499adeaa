-- Trace lists filtered by agent, team or user and by status: see the SQLite
-- migration of the same number. INCLUDE keeps the key as it was and lets
-- index-only scans apply the status filter.
DROP INDEX spans_roots_agent_id;
DROP INDEX spans_roots_team_id;
DROP INDEX spans_roots_user_id;
CREATE INDEX spans_roots_agent_id ON spans (agent_id, start_ns, trace_id, span_id) INCLUDE (status) WHERE is_root = 1;
CREATE INDEX spans_roots_team_id ON spans (team_id, start_ns, trace_id, span_id) INCLUDE (status) WHERE is_root = 1;
CREATE INDEX spans_roots_user_id ON spans (user_id, start_ns, trace_id, span_id) INCLUDE (status) WHERE is_root = 1;
