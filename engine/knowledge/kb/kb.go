// Package kb runs the knowledge bases declared in the specs: it ingests
// documents (uploads and YAML sources) through a durable job queue, keeps the
// vector stores up to date, and answers searches for agents and the API.
//
// Ingestion is a queue in SQL: a document's raw bytes and its status live in a
// row before any work starts, so a crash or restart resumes unfinished
// documents, and chunk ids derived from the document id make re-ingestion an
// upsert, never a duplicate.
package kb
