-- One row per trace instead of one per span (see store/traces.go): the
-- trace's spans as a JSON array, and the summary that trace lists show and
-- filter by, taken from the trace's root span. Writing a row per span cost
-- the run path a table row, a primary-key entry and 21 bound parameters per
-- span; now a run's trace is one insert.
--
-- The list indexes end with trace_id (the tie-breaker of the list order),
-- then status, which the console filters by along with the rest. Status has
-- no index of its own: a planner without statistics would pick it over a
-- better one (an agent's traces among every OK trace), and a status-only
-- list walks the time index, which has the status, without opening a row.
-- Ids that are often empty (a team run has no agent, a run without a user
-- no user) are indexed only when set; ListTraces spells out "<> ''" so the
-- planner uses those indexes.

CREATE TABLE traces (
    trace_id     TEXT NOT NULL PRIMARY KEY,
    root_span_id TEXT NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT '',
    start_ns     INTEGER NOT NULL,
    start_time   TEXT NOT NULL,
    end_ns       INTEGER NOT NULL,
    duration_ns  INTEGER NOT NULL,
    run_id       TEXT NOT NULL DEFAULT '',
    session_id   TEXT NOT NULL DEFAULT '',
    user_id      TEXT NOT NULL DEFAULT '',
    agent_id     TEXT NOT NULL DEFAULT '',
    team_id      TEXT NOT NULL DEFAULT '',
    input        TEXT NOT NULL DEFAULT '',
    total_spans  INTEGER NOT NULL,
    error_count  INTEGER NOT NULL,
    spans        TEXT NOT NULL
) STRICT;

CREATE INDEX traces_start ON traces (start_ns, trace_id, status);
CREATE INDEX traces_run_id ON traces (run_id) WHERE run_id <> '';
CREATE INDEX traces_session_id ON traces (session_id, start_ns, trace_id) WHERE session_id <> '';
CREATE INDEX traces_agent_id ON traces (agent_id, start_ns, trace_id, status) WHERE agent_id <> '';
CREATE INDEX traces_team_id ON traces (team_id, start_ns, trace_id, status) WHERE team_id <> '';
CREATE INDEX traces_user_id ON traces (user_id, start_ns, trace_id, status) WHERE user_id <> '';

INSERT INTO traces (trace_id, root_span_id, name, status, start_ns, start_time, end_ns, duration_ns,
    run_id, session_id, user_id, agent_id, team_id, input, total_spans, error_count, spans)
SELECT r.trace_id, r.span_id, r.name, r.status, r.start_ns, r.start_time, r.end_ns, r.duration_ns,
    r.run_id, r.session_id, r.user_id, r.agent_id, r.team_id,
    COALESCE(json_extract(r.attributes, '$.input'), ''),
    (SELECT COUNT(*) FROM spans s WHERE s.trace_id = r.trace_id),
    (SELECT COUNT(*) FROM spans s WHERE s.trace_id = r.trace_id AND s.status = 'ERROR'),
    (SELECT json_group_array(json_object(
        'span_id', s.span_id, 'parent_span_id', s.parent_span_id, 'name', s.name, 'kind', s.kind,
        'start_ns', s.start_ns, 'end_ns', s.end_ns, 'status', s.status, 'status_message', s.status_message,
        'run_id', s.run_id, 'session_id', s.session_id, 'user_id', s.user_id, 'agent_id', s.agent_id, 'team_id', s.team_id,
        'input_tokens', s.input_tokens, 'output_tokens', s.output_tokens, 'attributes', json(s.attributes))
        ORDER BY s.start_ns, s.span_id)
     FROM spans s WHERE s.trace_id = r.trace_id)
FROM spans r
WHERE r.is_root = 1;

DROP TABLE spans;
