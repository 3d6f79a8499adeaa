-- Budget counters (issue 17): one row per budget, per-key (scope: user:alice,
-- run:…, '' for a shared pot) and window ('2026-12-07' for a day, '2026-12'
-- for a month, '' for none). Runs add to them with one atomic UPSERT that
-- returns the new totals, so every replica enforces the same budget. cost is
-- in nano-dollars, wall_time_ns in nanoseconds: integers, so sums are exact.
CREATE TABLE budget_usage (
    budget       TEXT NOT NULL,
    scope        TEXT NOT NULL,
    win          TEXT NOT NULL,
    cost         BIGINT NOT NULL DEFAULT 0,
    tokens       BIGINT NOT NULL DEFAULT 0,
    tool_calls   BIGINT NOT NULL DEFAULT 0,
    wall_time_ns BIGINT NOT NULL DEFAULT 0,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (budget, scope, win)
);
-- Each run's cost in nano-dollars, for sums over sessions and days.
ALTER TABLE runs ADD COLUMN cost BIGINT NOT NULL DEFAULT 0;
