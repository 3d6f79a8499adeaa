-- Rate limits (issue 17). One row per limited subject ("key:<name>",
-- "user:<id>", "ip:<address>") holds the GCRA theoretical arrival time in
-- microseconds since the Unix epoch; every request moves it with one
-- conditional upsert, so replicas sharing the database share the limit.
CREATE TABLE rate_limits (
    subject TEXT    NOT NULL PRIMARY KEY,
    tat_us  INTEGER NOT NULL
) STRICT;

-- The runs a subject started, for its concurrent-runs limit: a subject's
-- PENDING or RUNNING runs are counted through this table (rows of finished
-- runs are pruned when the subject starts its next run).
CREATE TABLE rate_limit_runs (
    subject TEXT NOT NULL,
    run_id  TEXT NOT NULL,
    PRIMARY KEY (subject, run_id)
) STRICT;
