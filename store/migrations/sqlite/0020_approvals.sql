-- Approvals (issue 17). A run of an agent or team that holds tool calls for
-- a decision is PAUSED; its held state lives in run_pauses (one row per
-- paused run: the turn's messages, tool calls and metrics so far, and the
-- held calls with the decisions given since), so that any replica, after
-- any restart, can continue it. It goes with its run.
CREATE TABLE run_pauses (
    run_id     TEXT NOT NULL PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

-- The inbox: one row per held call that needs a confirmation. A decision
-- is a conditional update of a pending row (status = 'pending'), so a second
-- one finds nothing to update. approver_users and approver_scopes are the
-- policy's approvers as ",a,b," so a user-bound key's view is a LIKE.
CREATE TABLE approvals (
    id              TEXT NOT NULL PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    session_id      TEXT NOT NULL,
    tool_call_id    TEXT NOT NULL,
    target_kind     TEXT NOT NULL,
    target_name     TEXT NOT NULL,
    user_id         TEXT NOT NULL DEFAULT '',
    tool            TEXT NOT NULL,
    args            TEXT NOT NULL DEFAULT '{}',
    reason          TEXT NOT NULL DEFAULT '',
    approver_users  TEXT NOT NULL DEFAULT '',
    approver_scopes TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    default_decision TEXT NOT NULL DEFAULT 'reject',
    deadline        TEXT,
    decided_by      TEXT NOT NULL DEFAULT '',
    decided_at      TEXT,
    comment         TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL
) STRICT;
CREATE INDEX approvals_status_created ON approvals (status, created_at);
CREATE INDEX approvals_run ON approvals (run_id);
