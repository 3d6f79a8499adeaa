-- Each document's share of its knowledge base's keyword statistics, for
-- bases whose vectors live in Milvus (see kb.StatsStore): a document
-- ingested again or deleted takes its share back out of knowledge_stats,
-- which otherwise counted every ingestion of it for good. Shares are saved in
-- the transaction that saves the totals. Documents ingested before this
-- migration have no share recorded: their next ingestion adds without taking
-- out, once.
CREATE TABLE knowledge_document_stats (
    knowledge_id TEXT NOT NULL,
    document_id  TEXT NOT NULL,
    stats        BYTEA NOT NULL,
    PRIMARY KEY (knowledge_id, document_id)
);
