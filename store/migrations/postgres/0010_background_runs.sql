-- Background runs are stored PENDING until a worker claims them.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'ERROR', 'CANCELLED'));

-- Idempotency keys of run requests, per user: a request repeated with the
-- same key and body gets the run the first one made.
CREATE TABLE idempotency_keys (
    user_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, key)
);
