package knowledge

import (
	"context"
	"errors"
	"time"

	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

// The persistence of knowledge bases: the ingestion queue of documents, the
// BM25 statistics and the chunks of the embedded store. The types live here,
// with the other shared knowledge types, so the store package implements
// them without importing kb or embedded (and with them readers, embedders,
// providers and the egress guard).

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

// SourceFetch is what a URL source of a knowledge base answered last: the
// validators of the next conditional GET, and when it was fetched.
type SourceFetch struct {
	KnowledgeID, URL   string
	ETag, LastModified string
	FetchedAt          time.Time
}

// Document is one ingested (or ingesting) document of a knowledge base.
type Document struct {
	ID          string         `json:"id"`
	KnowledgeID string         `json:"knowledge_id"`
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Type        string         `json:"type"`   // reader type: text, markdown, html, pdf, csv, json
	Source      string         `json:"source"` // "upload", "upload:<url>" (an upload by URL), "text", or a YAML source: "url:<url>", "file:<path>"
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
// The store package implements it in SQL; kb consumes it.
type Documents interface {
	// Create inserts a document with its content, or returns the existing one
	// (created false) when a document with the same id exists.
	Create(ctx context.Context, d *Document, content []byte) (existing *Document, created bool, err error)
	Get(ctx context.Context, id string) (*Document, error)
	Content(ctx context.Context, id string) ([]byte, error)
	List(ctx context.Context, q DocumentQuery) ([]Document, int, error)
	// Counts counts the documents of every knowledge base by status, in
	// one pass: knowledge base, then status, to count.
	Counts(ctx context.Context) (map[string]map[string]int, error)
	// Update writes status, message, progress, chunks, attempts, metadata,
	// name and description.
	Update(ctx context.Context, d *Document) error
	Delete(ctx context.Context, id string) error
	// Pending lists documents still processing (to resume after a restart).
	Pending(ctx context.Context) ([]Document, error)
	// Sources lists the documents of a knowledge base that came from YAML
	// sources, by source.
	Sources(ctx context.Context, knowledgeID string) (map[string]Document, error)
	// BySource lists the documents of a knowledge base with one source
	// (normally one; more only if a crash interrupted a replacement).
	BySource(ctx context.Context, knowledgeID, source string) ([]Document, error)
}

// StatsStore persists the BM25 statistics of knowledge bases whose vectors
// live outside the process, with each document's share of them: a document
// ingested again or deleted takes its share back out, so the statistics
// always count the chunks that exist, once.
type StatsStore interface {
	// LoadStats returns a knowledge base's statistics, nil when none were
	// saved.
	LoadStats(ctx context.Context, knowledgeID string) (*bm25.Stats, error)
	// LoadDocumentStats returns what a document's chunks add to its
	// base's statistics, nil when nothing is recorded.
	LoadDocumentStats(ctx context.Context, knowledgeID, documentID string) (*bm25.Stats, error)
	// ReplaceDocumentStats makes share a document's part of its base's
	// statistics in place of the part recorded before (share nil: the
	// document has none any more) and returns the base's statistics after
	// the change. It reads and writes the totals in one transaction, so
	// that replicas ingesting into one base at once each add their share
	// instead of overwriting the other's.
	ReplaceDocumentStats(ctx context.Context, knowledgeID, documentID string, share *bm25.Stats) (*bm25.Stats, error)
}

// ChunkRepository persists the chunks of the embedded vector store; the store
// package implements it in SQL. Its methods are called with no index lock
// held, so they may be slow; the embedded Store serialises the writes to one
// knowledge base.
type ChunkRepository interface {
	// Load streams every stored chunk of all knowledge bases (vectors
	// included, text not needed) to fn, for building the index at start. An
	// error from fn stops the load and is returned.
	Load(ctx context.Context, fn func(ChunkRecord) error) error
	// Put upserts records by chunk id.
	Put(ctx context.Context, records []ChunkRecord) error
	// DeleteDocument deletes a document's chunks and returns their ids.
	DeleteDocument(ctx context.Context, knowledgeID, documentID string) ([]string, error)
	// Texts returns the texts of the chunks with the given ids; ids not found
	// are absent from the map.
	Texts(ctx context.Context, ids []string) (map[string]string, error)
}

// ChunkRecord is one persisted chunk.
type ChunkRecord struct {
	Chunk  Chunk // Text may be empty on Load
	Dense  []float32
	Sparse map[uint32]float32 // document-side BM25 weights (bm25.Doc)
	Len    int                // length in terms, for the BM25 statistics
}
