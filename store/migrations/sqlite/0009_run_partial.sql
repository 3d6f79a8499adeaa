-- A run that was cancelled or failed after its answer had started streaming
-- keeps the text the client already saw, and says that the text is partial
-- (the answer was cut short), rather than storing nothing.
ALTER TABLE runs ADD COLUMN partial INTEGER NOT NULL DEFAULT 0 CHECK (partial IN (0, 1));
