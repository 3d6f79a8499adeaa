-- GET /agents|teams/{id}/runs lists a component's top-level runs, newest
-- first, optionally of one session and of one status. With a session the
-- (session_id, created_at) index already finds them; across a component's
-- sessions this one does, in order, so a page reads its rows and no more.
-- It holds only top-level runs (team members' runs are never listed) and
-- columns a run never changes, so a run's insert writes it once and its
-- finish never rewrites it. Status and user are checked on the rows.
CREATE INDEX runs_component_created_at ON runs (component_id, type, created_at)
    WHERE parent_run_id = '';

-- Idempotency keys expire (session.Options.IdempotencyTTL): the periodic
-- purge deletes those created before a cutoff.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
