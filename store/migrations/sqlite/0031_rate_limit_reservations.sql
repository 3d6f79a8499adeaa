-- Concurrent-runs limits decided atomically. A run route first reserves a
-- slot (a row whose run_id is a reservation token and reserved_until_us its
-- expiry), counting and inserting under one lock, then binds the
-- reservation to the run it started (run_id the run's id, reserved_until_us
-- 0). Two requests at once can no longer both see a free slot; a
-- reservation whose request died (a crashed replica) frees its slot when it
-- expires.
ALTER TABLE rate_limit_runs ADD COLUMN reserved_until_us INTEGER NOT NULL DEFAULT 0;
