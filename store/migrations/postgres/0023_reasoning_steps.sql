-- Reasoning (issue 18): the reasoning steps of a run (a planning pass, think
-- tool calls, a model's native reasoning), as a JSON array.
ALTER TABLE runs ADD COLUMN reasoning JSON NOT NULL DEFAULT '[]';
