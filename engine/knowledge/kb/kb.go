// Package kb runs the knowledge bases declared in the specs: it ingests
// documents (uploads and YAML sources) through a durable job queue, keeps the
// vector stores up to date, and answers searches for agents and the API.
//
// Ingestion is a queue in SQL: a document's raw bytes and its status live in a
// row before any work starts, so a crash or restart resumes unfinished
// documents, and chunk ids derived from the document id make re-ingestion an
// upsert, never a duplicate.
package kb

import (
	"github.com/troupehq/troupe/engine/knowledge"
)

// The document types are declared in package knowledge, so the store can
// persist them without importing kb; kb's API speaks in them under these
// names.
type (
	Document      = knowledge.Document
	DocumentQuery = knowledge.DocumentQuery
	Documents     = knowledge.Documents
	StatsStore    = knowledge.StatsStore
)

// Document statuses (see knowledge.StatusProcessing).
const (
	StatusProcessing = knowledge.StatusProcessing
	StatusCompleted  = knowledge.StatusCompleted
	StatusFailed     = knowledge.StatusFailed
	StatusOrphaned   = knowledge.StatusOrphaned
)

// ErrNotFound is returned for unknown documents and knowledge bases.
var ErrNotFound = knowledge.ErrNotFound

// Hit is a search result with the document name.
type Hit = knowledge.Hit
