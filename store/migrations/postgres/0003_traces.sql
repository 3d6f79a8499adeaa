-- Spans of run traces: see the SQLite migration of the same number.

CREATE TABLE spans (
    trace_id       TEXT NOT NULL,
    span_id        TEXT NOT NULL,
    parent_span_id TEXT NOT NULL DEFAULT '',
    name           TEXT NOT NULL DEFAULT '',
    kind           TEXT NOT NULL DEFAULT '',
    start_ns       BIGINT NOT NULL,
    start_time     TIMESTAMPTZ NOT NULL,
    end_ns         BIGINT NOT NULL,
    duration_ns    BIGINT NOT NULL,
    status         TEXT NOT NULL DEFAULT '',
    status_message TEXT NOT NULL DEFAULT '',
    run_id         TEXT NOT NULL DEFAULT '',
    session_id     TEXT NOT NULL DEFAULT '',
    user_id        TEXT NOT NULL DEFAULT '',
    agent_id       TEXT NOT NULL DEFAULT '',
    team_id        TEXT NOT NULL DEFAULT '',
    input_tokens   BIGINT NOT NULL DEFAULT 0,
    output_tokens  BIGINT NOT NULL DEFAULT 0,
    attributes     JSON NOT NULL DEFAULT '{}',
    marked_root    SMALLINT NOT NULL DEFAULT 0,
    is_root        SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id)
);

-- Filters and lists read root spans only, so every index but the primary key
-- is partial on is_root: children cost one B-tree insert each.
CREATE INDEX spans_start_time ON spans (start_time) WHERE is_root = 1;
CREATE INDEX spans_run_id ON spans (run_id) WHERE is_root = 1;
CREATE INDEX spans_session_id ON spans (session_id) WHERE is_root = 1;
CREATE INDEX spans_roots_start ON spans (start_ns, trace_id, span_id) WHERE is_root = 1;
CREATE INDEX spans_roots_agent_id ON spans (agent_id, start_ns, trace_id, span_id) WHERE is_root = 1;
CREATE INDEX spans_roots_team_id ON spans (team_id, start_ns, trace_id, span_id) WHERE is_root = 1;
CREATE INDEX spans_roots_user_id ON spans (user_id, start_ns, trace_id, span_id) WHERE is_root = 1;
CREATE INDEX spans_roots_status ON spans (status, start_ns, trace_id, span_id) WHERE is_root = 1;
