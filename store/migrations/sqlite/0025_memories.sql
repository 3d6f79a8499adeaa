-- User memories (issue 18). SQL is the source of truth; the search index
-- (knowledge chunks under the reserved knowledge id _memories) is rebuilt
-- from this table. topics are stored as ",a,b," so that a topic filter is a
-- LIKE '%,a,%' (topics never contain commas).
CREATE TABLE memories (
    id         TEXT NOT NULL PRIMARY KEY,
    user_id    TEXT NOT NULL,
    agent_id   TEXT NOT NULL DEFAULT '',
    team_id    TEXT NOT NULL DEFAULT '',
    memory     TEXT NOT NULL,
    topics     TEXT NOT NULL DEFAULT '',
    input      TEXT NOT NULL DEFAULT '',
    run_id     TEXT NOT NULL DEFAULT '',
    session_id TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX memories_user_updated ON memories (user_id, updated_at);
CREATE INDEX memories_user_agent_updated ON memories (user_id, agent_id, updated_at);
