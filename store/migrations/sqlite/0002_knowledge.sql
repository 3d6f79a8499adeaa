-- Knowledge bases: documents (the ingestion queue, with their raw content, so
-- a restart resumes unfinished ones), their chunks (text, dense and BM25
-- vectors: the embedded index is rebuilt from them at start), BM25 statistics
-- of knowledge bases indexed outside the process, and the references runs used.

CREATE TABLE knowledge_documents (
    id             TEXT NOT NULL PRIMARY KEY,
    knowledge_id   TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    type           TEXT NOT NULL,
    source         TEXT NOT NULL,
    metadata       TEXT NOT NULL DEFAULT '{}',
    size           INTEGER NOT NULL,
    status         TEXT NOT NULL,
    message        TEXT NOT NULL DEFAULT '',
    progress       REAL NOT NULL DEFAULT 0,
    chunks         INTEGER NOT NULL DEFAULT 0,
    attempts       INTEGER NOT NULL DEFAULT 0,
    chunk_strategy TEXT NOT NULL DEFAULT '',
    chunk_size     INTEGER NOT NULL DEFAULT 0,
    chunk_overlap  INTEGER NOT NULL DEFAULT 0,
    content        BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT;

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
    metadata      TEXT NOT NULL DEFAULT 'null',
    dense         BLOB NOT NULL,
    sparse        BLOB NOT NULL,
    len           INTEGER NOT NULL
) STRICT;

CREATE INDEX knowledge_chunks_document ON knowledge_chunks (knowledge_id, document_id);

CREATE TABLE knowledge_stats (
    knowledge_id TEXT NOT NULL PRIMARY KEY,
    stats        BLOB NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;

ALTER TABLE runs ADD COLUMN refs TEXT NOT NULL DEFAULT '[]';
