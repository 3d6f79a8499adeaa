// Package knowledge is retrieval for agents: the types shared by readers,
// chunkers, embedders and vector stores, and the search logic that combines
// dense (vector) and keyword (BM25) scores into readable 0–1 scores (see
// score.go).
//
// The pieces live in subpackages: reader (file types to text), chunk (text to
// chunks), embed (chunks to vectors), embedded (the in-process store, persisted
// through the SQL store) and milvus (the Milvus adapter). This package owns the
// interfaces they meet at.
package knowledge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Section is a span of a document's text with where it came from: the page of
// a PDF, the heading path of Markdown or HTML ("Guide > Install"), the row
// range of a CSV.
type Section struct {
	Text    string
	Page    int    // 1-based; 0 when the format has no pages
	Heading string // heading path, " > " separated; empty when none
}

// Chunk is one searchable piece of a document.
type Chunk struct {
	ID          string         `json:"id"` // stable: DocumentID and Index, so re-ingesting upserts
	KnowledgeID string         `json:"knowledge_id"`
	DocumentID  string         `json:"document_id"`
	Document    string         `json:"document_name"`
	Index       int            `json:"index"` // position within the document
	Text        string         `json:"text"`
	Page        int            `json:"page,omitempty"`
	Heading     string         `json:"heading,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"` // the document's metadata
}

// DocumentID is the id of a document: a hash of its knowledge base and content,
// so uploading the same bytes twice is a no-op and different texts never
// collide.
func DocumentID(knowledgeID string, content []byte) string {
	h := sha256.New()
	h.Write([]byte(knowledgeID))
	h.Write([]byte{0})
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// ChunkID is the id of a document's index-th chunk.
func ChunkID(documentID string, index int) string {
	return fmt.Sprintf("%s-%05d", documentID, index)
}

// Embedder turns texts into dense vectors. Implementations are safe for
// concurrent use.
type Embedder interface {
	// Name identifies the embedder and its configuration ("local-384",
	// "openai/text-embedding-3-small"); vectors from different names are not
	// comparable.
	Name() string
	Dimension() int
	// Embed returns one L2-normalised vector per text, in order.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// Search modes.
const (
	ModeVector  = "vector"
	ModeKeyword = "keyword"
	ModeHybrid  = "hybrid"
)

// Query is one search of one knowledge base.
type Query struct {
	Text   string
	Vector []float32 // the embedded Text, for vector and hybrid modes
	// Sparse is the Text's BM25 query vector (term id → IDF weight), for
	// keyword and hybrid modes.
	Sparse  map[uint32]float32
	Mode    string
	TopK    int
	Filters Filters
	// WithoutText asks for hits without their chunk text (ids, document
	// ids, metadata and scores only), for callers that read the text from
	// elsewhere: user memories re-read their rows from SQL. A store may
	// fill the text anyway.
	WithoutText bool
}

// Filters restrict a search to chunks whose document metadata matches every
// entry: a scalar value means equality, a list means "one of".
type Filters map[string]any

// Hit is a search result.
type Hit struct {
	Chunk
	Score float64 `json:"score"`
}

// VectorStore indexes chunks of knowledge bases for dense and keyword search.
// Implementations are safe for concurrent use.
type VectorStore interface {
	// Upsert stores chunks with their dense vectors and sparse (BM25) vectors,
	// replacing chunks with the same IDs.
	Upsert(ctx context.Context, knowledgeID string, chunks []Chunk, dense [][]float32, sparse []map[uint32]float32) error
	// DeleteDocument removes every chunk of a document.
	DeleteDocument(ctx context.Context, knowledgeID, documentID string) error
	// Search returns the best chunks for q, best first, at most q.TopK.
	Search(ctx context.Context, knowledgeID string, q Query) ([]Hit, error)
}

// RRFK is the k constant of reciprocal rank fusion; 60 is the value from the
// original paper and what Milvus and Elasticsearch use.
const RRFK = 60

// Fuse combines ranked lists with reciprocal rank fusion: each hit scores
// Σ 1/(RRFK + rank) over the lists it appears in. Ranking by rank rather than
// raw score lets dense cosine similarities and BM25 scores, which live on
// different scales, be combined without calibration.
func Fuse(topK int, lists ...[]Hit) []Hit {
	type acc struct {
		hit   Hit
		score float64
	}
	byID := map[string]*acc{}
	var order []string
	for _, list := range lists {
		for rank, h := range list {
			a, ok := byID[h.ID]
			if !ok {
				a = &acc{hit: h}
				byID[h.ID] = a
				order = append(order, h.ID)
			}
			a.score += 1 / float64(RRFK+rank+1)
		}
	}
	out := make([]Hit, 0, len(order))
	for _, id := range order {
		a := byID[id]
		a.hit.Score = a.score
		out = append(out, a.hit)
	}
	sortHits(out)
	if topK > 0 && len(out) > topK {
		out = out[:topK]
	}
	return out
}
