-- Knowledge bases: see the SQLite migration of the same number.

CREATE TABLE knowledge_documents (
    id             TEXT NOT NULL PRIMARY KEY,
    knowledge_id   TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    type           TEXT NOT NULL,
    source         TEXT NOT NULL,
    metadata       JSON NOT NULL DEFAULT '{}',
    size           BIGINT NOT NULL,
    status         TEXT NOT NULL,
    message        TEXT NOT NULL DEFAULT '',
    progress       DOUBLE PRECISION NOT NULL DEFAULT 0,
    chunks         INTEGER NOT NULL DEFAULT 0,
    attempts       INTEGER NOT NULL DEFAULT 0,
    chunk_strategy TEXT NOT NULL DEFAULT '',
    chunk_size     INTEGER NOT NULL DEFAULT 0,
    chunk_overlap  INTEGER NOT NULL DEFAULT 0,
    content        BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX knowledge_documents_knowledge_id ON knowledge_documents (knowledge_id, created_at);
CREATE INDEX knowledge_documents_processing ON knowledge_documents (status) WHERE status = 'processing';

CREATE TABLE knowledge_chunks (
    id            TEXT NOT NULL PRIMARY KEY,
    knowledge_id  TEXT NOT NULL,
    document_id   TEXT NOT NULL,
    document_name TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    text          TEXT NOT NULL,
    page          INTEGER NOT NULL DEFAULT 0,
    heading       TEXT NOT NULL DEFAULT '',
    metadata      JSON NOT NULL DEFAULT 'null',
    dense         BYTEA NOT NULL,
    sparse        BYTEA NOT NULL,
    len           INTEGER NOT NULL
);

CREATE INDEX knowledge_chunks_document ON knowledge_chunks (knowledge_id, document_id);

CREATE TABLE knowledge_stats (
    knowledge_id TEXT NOT NULL PRIMARY KEY,
    stats        BYTEA NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

ALTER TABLE runs ADD COLUMN refs JSON NOT NULL DEFAULT '[]';
