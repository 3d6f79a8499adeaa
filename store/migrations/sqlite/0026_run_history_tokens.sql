-- A completed run's estimated tokens as history (session.EstimateTokens of
-- its messages), written by FinishRun, so that a turn with summary on
-- learns how much of its session is not yet summarized by reading one
-- integer per run instead of decoding every run's messages. Runs stored
-- before this migration get an estimate from their JSON's length (a little
-- over the real one: it counts the JSON's keys).
ALTER TABLE runs ADD COLUMN history_tokens INTEGER NOT NULL DEFAULT 0;

UPDATE runs SET history_tokens = (LENGTH(messages) + 3) / 4
WHERE status = 'COMPLETED' AND parent_run_id = '';
