-- Spans of run traces: the default telemetry sink (store.Traces).
--
-- start_ns and end_ns keep the exact times (Unix nanoseconds; 0 for a zero
-- time) that the trace API reads back and that lists order and filter by;
-- start_time holds the same start as a timestamp (UTC text, like every
-- timestamp of this schema) for people and for age-based clean-ups.
--
-- is_root marks the one span per trace that trace lists show: see
-- store/traces.go for the rule. marked_root records whether the span carried
-- the "troupe.root" = "true" attribute, which the rule needs again when later
-- spans of the trace arrive. The list indexes hold only roots, with the
-- columns lists order and page by, so that listing and counting traces never
-- reads the other spans.

CREATE TABLE spans (
    trace_id       TEXT NOT NULL,
    span_id        TEXT NOT NULL,
    parent_span_id TEXT NOT NULL DEFAULT '',
    name           TEXT NOT NULL DEFAULT '',
    kind           TEXT NOT NULL DEFAULT '',
    start_ns       INTEGER NOT NULL,
    start_time     TEXT NOT NULL,
    end_ns         INTEGER NOT NULL,
    duration_ns    INTEGER NOT NULL,
    status         TEXT NOT NULL DEFAULT '',
    status_message TEXT NOT NULL DEFAULT '',
    run_id         TEXT NOT NULL DEFAULT '',
    session_id     TEXT NOT NULL DEFAULT '',
    user_id        TEXT NOT NULL DEFAULT '',
    agent_id       TEXT NOT NULL DEFAULT '',
    team_id        TEXT NOT NULL DEFAULT '',
    input_tokens   INTEGER NOT NULL DEFAULT 0,
    output_tokens  INTEGER NOT NULL DEFAULT 0,
    attributes     TEXT NOT NULL DEFAULT '{}',
    marked_root    INTEGER NOT NULL DEFAULT 0,
    is_root        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id)
) STRICT;

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
