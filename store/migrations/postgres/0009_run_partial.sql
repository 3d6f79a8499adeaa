-- A run cut short keeps the text streamed so far: see the SQLite migration of
-- the same number.
ALTER TABLE runs ADD COLUMN partial BOOLEAN NOT NULL DEFAULT false;
