-- Keyed documents (a Kafka source's messages name their document by id) are
-- looked up by knowledge base and source on every message.
CREATE INDEX knowledge_documents_source ON knowledge_documents (knowledge_id, source);
