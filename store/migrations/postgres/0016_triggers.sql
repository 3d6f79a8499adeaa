-- Runs started by a trigger name it (issue 16): '' for every other run.
ALTER TABLE runs ADD COLUMN trigger_name TEXT NOT NULL DEFAULT '';
-- One row per firing of a trigger: the run it started, the tick it was for
-- (the webhook call's time for webhooks), when it fired and how: schedule,
-- webhook or manual (run now). A schedule's catch-up policy reads the last
-- scheduled or webhook firing; the console shows the last runs.
CREATE TABLE trigger_fires (
    run_id       TEXT PRIMARY KEY,
    trigger_name TEXT NOT NULL,
    scheduled_at TIMESTAMPTZ NOT NULL,
    fired_at     TIMESTAMPTZ NOT NULL,
    source       TEXT NOT NULL DEFAULT 'schedule'
);
CREATE INDEX trigger_fires_name_fired ON trigger_fires (trigger_name, fired_at);
