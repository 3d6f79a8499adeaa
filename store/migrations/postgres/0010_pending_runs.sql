-- Background runs are stored PENDING until a worker claims them.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'ERROR', 'CANCELLED'));
