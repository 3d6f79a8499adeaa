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
	"context"
	"errors"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
)

// Document statuses.
const (
	StatusProcessing = "processing"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	// StatusOrphaned is shown, never stored, for a document whose knowledge
	// base left the configuration: it is not searchable, an unfinished
	// ingestion waits, and the base coming back restores the stored status.
	// Delete removes it for good.
	StatusOrphaned = "orphaned"
)

// Document is one ingested (or ingesting) document of a knowledge base.
type Document struct {
	ID          string         `json:"id"`
	KnowledgeID string         `json:"knowledge_id"`
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Type        string         `json:"type"`   // reader type: text, markdown, html, pdf, csv, json
	Source      string         `json:"source"` // "upload", "text", "url:<url>" or "file:<path>"
	Metadata    map[string]any `json:"metadata,omitempty"`
	Size        int64          `json:"size"`
	Status      string         `json:"status"`
	Message     string         `json:"status_message,omitempty"`
	Progress    float64        `json:"progress"` // 0 to 1
	Chunks      int            `json:"chunks"`
	Attempts    int            `json:"attempts"`
	// Chunking overrides for this document (zero: the knowledge base's).
	ChunkStrategy string    `json:"chunk_strategy,omitempty"`
	ChunkSize     int       `json:"chunk_size,omitempty"`
	ChunkOverlap  int       `json:"chunk_overlap,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// ErrNotFound is returned for unknown documents and knowledge bases.
var ErrNotFound = errors.New("not found")

// DocumentQuery lists documents.
type DocumentQuery struct {
	KnowledgeID string
	Status      string
	Limit, Page int
	SortBy      string // created_at, updated_at, name, size
	SortOrder   string
}

// Documents persists documents and their raw content: the ingestion queue.
// The store package implements it in SQL.
type Documents interface {
	// Create inserts a document with its content, or returns the existing one
	// (created false) when a document with the same id exists.
	Create(ctx context.Context, d *Document, content []byte) (existing *Document, created bool, err error)
	Get(ctx context.Context, id string) (*Document, error)
	Content(ctx context.Context, id string) ([]byte, error)
	List(ctx context.Context, q DocumentQuery) ([]Document, int, error)
	// Update writes status, message, progress, chunks, attempts, metadata,
	// name and description.
	Update(ctx context.Context, d *Document) error
	Delete(ctx context.Context, id string) error
	// Pending lists documents still processing (to resume after a restart).
	Pending(ctx context.Context) ([]Document, error)
	// Sources lists the documents of a knowledge base that came from YAML
	// sources, by source.
	Sources(ctx context.Context, knowledgeID string) (map[string]Document, error)
}

// Hit is a search result with the document name.
type Hit = knowledge.Hit
