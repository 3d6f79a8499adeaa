-- Every write the console's spec editor made (issue 21): who (the key and
-- the user it is bound to), what (create, update, rename, delete), which
-- file (and where from, for a rename), its content hash before and after,
-- when, and the trace that recorded it. Files stay the source of truth;
-- this is only the log of who changed them through the server.
CREATE TABLE editor_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    user_id     TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    path        TEXT NOT NULL,
    from_path   TEXT NOT NULL DEFAULT '',
    hash_before TEXT NOT NULL DEFAULT '',
    hash_after  TEXT NOT NULL DEFAULT '',
    trace_id    TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX editor_audit_at ON editor_audit (at DESC, id DESC);
