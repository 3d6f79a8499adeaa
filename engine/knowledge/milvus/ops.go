package milvus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/milvus-io/milvus-sdk-go/v2/client"
	"github.com/milvus-io/milvus-sdk-go/v2/entity"

	"github.com/troupehq/troupe/engine/knowledge"
)

// chunkKey is the reserved metadata key holding the chunk's own fields, so a
// hit gives back exactly the chunk that was stored even when the document's
// metadata uses the same names.
const chunkKey = "_chunk"

// Reserved metadata names: the chunk fields are also stored at the top level
// of the metadata JSON (unless the document's metadata has them) so filters
// can use them.
var chunkFields = []string{"document_name", "index", "page", "heading"}

// Sparse vectors: Milvus rejects empty rows and the index 2^32-1, so a chunk
// without terms gets one negligible placeholder weight and the last index is
// folded onto the one before it (in documents and queries alike).
const (
	sparseMaxIndex    = math.MaxUint32 - 1
	sparsePlaceholder = 1e-9
)

type chunkInfo struct {
	DocumentName string   `json:"document_name"`
	Index        int      `json:"index"`
	Page         int      `json:"page"`
	Heading      string   `json:"heading"`
	Added        []string `json:"added,omitempty"` // reserved names added at the top level
}

// encodeMetadata is the metadata JSON of a chunk.
func encodeMetadata(c *knowledge.Chunk) ([]byte, error) {
	m := make(map[string]any, len(c.Metadata)+len(chunkFields)+1)
	maps.Copy(m, c.Metadata)
	info := chunkInfo{DocumentName: c.Document, Index: c.Index, Page: c.Page, Heading: c.Heading}
	values := []any{c.Document, c.Index, c.Page, c.Heading}
	for i, name := range chunkFields {
		if _, ok := m[name]; !ok {
			m[name] = values[i]
			info.Added = append(info.Added, name)
		}
	}
	m[chunkKey] = info
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: encoding its metadata: %w", c.ID, err)
	}
	return b, nil
}

// decodeMetadata fills c's document name, index, page, heading and metadata
// from the stored JSON.
func decodeMetadata(raw []byte, c *knowledge.Chunk) error {
	if len(raw) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("chunk %s: decoding its metadata: %w", c.ID, err)
	}
	var info chunkInfo
	if rawInfo, ok := m[chunkKey]; ok {
		b, _ := json.Marshal(rawInfo)
		if err := json.Unmarshal(b, &info); err != nil {
			return fmt.Errorf("chunk %s: decoding its metadata: %w", c.ID, err)
		}
		delete(m, chunkKey)
		for _, name := range info.Added {
			delete(m, name)
		}
	} else { // written by something else: take what is there
		info.DocumentName, _ = m["document_name"].(string)
		info.Heading, _ = m["heading"].(string)
		if f, ok := m["index"].(float64); ok {
			info.Index = int(f)
		}
		if f, ok := m["page"].(float64); ok {
			info.Page = int(f)
		}
	}
	c.Document, c.Index, c.Page, c.Heading = info.DocumentName, info.Index, info.Page, info.Heading
	if len(m) > 0 {
		c.Metadata = m
	}
	return nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character, and
// replaces invalid UTF-8.
func truncateUTF8(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sparseEmbedding converts a BM25 vector; empty ones get the placeholder.
func sparseEmbedding(v map[uint32]float32) (entity.SparseEmbedding, error) {
	pos := make([]uint32, 0, len(v))
	val := make([]float32, 0, len(v))
	for p, w := range v {
		if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
			return nil, fmt.Errorf("sparse weight %v of term %d is not finite", w, p)
		}
		if w == 0 {
			continue
		}
		p = min(p, sparseMaxIndex)
		if p == sparseMaxIndex {
			if i := indexOf(pos, p); i >= 0 {
				val[i] += w
				continue
			}
		}
		pos = append(pos, p)
		val = append(val, w)
	}
	return entity.NewSliceSparseEmbedding(pos, val)
}

func indexOf(s []uint32, v uint32) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func documentSparse(v map[uint32]float32) (entity.SparseEmbedding, error) {
	e, err := sparseEmbedding(v)
	if err != nil || e.Len() > 0 {
		return e, err
	}
	return entity.NewSliceSparseEmbedding([]uint32{sparseMaxIndex}, []float32{sparsePlaceholder})
}

func checkID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("milvus: empty %s", what)
	case len(id) > maxIDLength:
		return fmt.Errorf("milvus: %s %.40q... is longer than %d bytes", what, id, maxIDLength)
	case !utf8.ValidString(id):
		return fmt.Errorf("milvus: %s %q is not valid UTF-8", what, id)
	}
	return nil
}

// Upsert stores chunks, replacing those with the same IDs. Chunks are sent in
// batches; a failure part-way leaves the earlier batches written (upserting
// again is safe). Texts longer than 65535 bytes are truncated.
func (s *Store) Upsert(ctx context.Context, knowledgeID string, chunks []knowledge.Chunk, dense [][]float32, sparse []map[uint32]float32) error {
	if err := checkID("knowledge id", knowledgeID); err != nil {
		return err
	}
	if len(dense) != len(chunks) {
		return fmt.Errorf("milvus: %d chunks but %d dense vectors", len(chunks), len(dense))
	}
	if sparse != nil && len(sparse) != len(chunks) {
		return fmt.Errorf("milvus: %d chunks but %d sparse vectors", len(chunks), len(sparse))
	}
	if len(chunks) == 0 {
		return nil
	}
	// Milvus may keep both rows of a primary key repeated in one request:
	// keep the last.
	last := make(map[string]int, len(chunks))
	for i := range chunks {
		last[chunks[i].ID] = i
	}
	b := newBatch(s.opts.Dimension)
	for i := range chunks {
		c := &chunks[i]
		if last[c.ID] != i {
			continue
		}
		if err := checkID("chunk id", c.ID); err != nil {
			return err
		}
		if err := checkID("document id of chunk "+c.ID, c.DocumentID); err != nil {
			return err
		}
		if len(dense[i]) != s.opts.Dimension {
			return fmt.Errorf("milvus: chunk %s has a %d-dimensional vector, the collection holds %d", c.ID, len(dense[i]), s.opts.Dimension)
		}
		meta, err := encodeMetadata(c)
		if err != nil {
			return fmt.Errorf("milvus: %w", err)
		}
		var sv map[uint32]float32
		if sparse != nil {
			sv = sparse[i]
		}
		se, err := documentSparse(sv)
		if err != nil {
			return fmt.Errorf("milvus: chunk %s: %w", c.ID, err)
		}
		b.add(c.ID, c.DocumentID, knowledgeID, truncateUTF8(c.Text, maxTextBytes), meta, dense[i], se)
		if b.full() {
			if err := s.flush(ctx, b); err != nil {
				return err
			}
			b = newBatch(s.opts.Dimension)
		}
	}
	if b.len() > 0 {
		return s.flush(ctx, b)
	}
	return nil
}

// batch is the columns of one Upsert request.
type batch struct {
	dim                   int
	ids, docs, kbs, texts []string
	metas                 [][]byte
	dense                 [][]float32
	sparse                []entity.SparseEmbedding
	bytes                 int
}

func newBatch(dim int) *batch { return &batch{dim: dim} }

func (b *batch) add(id, doc, kb, text string, meta []byte, dense []float32, sparse entity.SparseEmbedding) {
	b.ids = append(b.ids, id)
	b.docs = append(b.docs, doc)
	b.kbs = append(b.kbs, kb)
	b.texts = append(b.texts, text)
	b.metas = append(b.metas, meta)
	b.dense = append(b.dense, dense)
	b.sparse = append(b.sparse, sparse)
	b.bytes += len(id) + len(doc) + len(kb) + len(text) + len(meta) + 4*len(dense) + 8*sparse.Len()
}

func (b *batch) len() int   { return len(b.ids) }
func (b *batch) full() bool { return b.len() >= batchRows || b.bytes >= batchBytes }

func (b *batch) columns() []entity.Column {
	return []entity.Column{
		entity.NewColumnVarChar(fieldID, b.ids),
		entity.NewColumnVarChar(fieldDocument, b.docs),
		entity.NewColumnVarChar(fieldKnowledge, b.kbs),
		entity.NewColumnVarChar(fieldText, b.texts),
		entity.NewColumnJSONBytes(fieldMetadata, b.metas),
		entity.NewColumnFloatVector(fieldDense, b.dim, b.dense),
		entity.NewColumnSparseVectors(fieldSparse, b.sparse),
	}
}

func (s *Store) flush(ctx context.Context, b *batch) error {
	c, err := s.ensure(ctx)
	if err != nil {
		return err
	}
	cols := b.columns()
	return s.do(ctx, fmt.Sprintf("upserting %d chunks into collection %s", b.len(), s.opts.Collection), func(ctx context.Context) error {
		_, err := c.Upsert(ctx, s.opts.Collection, "", cols...)
		return err
	})
}

// DeleteDocument removes every chunk of a document. Document ids hash their
// knowledge base, so the expression needs only document_id.
func (s *Store) DeleteDocument(ctx context.Context, knowledgeID, documentID string) error {
	if err := checkID("document id", documentID); err != nil {
		return err
	}
	c, err := s.ensure(ctx)
	if err != nil {
		return err
	}
	expr := documentExpr(documentID)
	return s.do(ctx, fmt.Sprintf("deleting document %s from collection %s", documentID, s.opts.Collection), func(ctx context.Context) error {
		return c.Delete(ctx, s.opts.Collection, "", expr)
	})
}

// outputFields are the fields a search returns besides the id.
var outputFields = []string{fieldDocument, fieldKnowledge, fieldText, fieldMetadata}

// Search returns the best chunks of knowledgeID for q, best first. Mode ""
// means hybrid. A keyword search without terms finds nothing; a hybrid search
// missing the vector or the terms uses the other alone. Vector and keyword
// hits carry raw scores (inner product, BM25); hybrid hits the readable
// knowledge.HybridScore, a side a candidate is missing from counting 0.
func (s *Store) Search(ctx context.Context, knowledgeID string, q knowledge.Query) ([]knowledge.Hit, error) {
	if err := checkID("knowledge id", knowledgeID); err != nil {
		return nil, err
	}
	topK := q.TopK
	if topK <= 0 {
		topK = defaultTopK
	}
	topK = min(topK, maxTopK)
	mode := q.Mode
	if mode == "" {
		mode = knowledge.ModeHybrid
	}
	var wantDense, wantSparse bool
	switch mode {
	case knowledge.ModeVector:
		wantDense = true
	case knowledge.ModeKeyword:
		wantSparse = true
	case knowledge.ModeHybrid:
		wantDense, wantSparse = len(q.Vector) > 0, len(q.Sparse) > 0
		if !wantDense && !wantSparse {
			return nil, errors.New("milvus: a hybrid search needs a query vector or keyword terms")
		}
	default:
		return nil, fmt.Errorf("milvus: unknown search mode %q (vector, keyword or hybrid)", q.Mode)
	}
	if wantDense && len(q.Vector) != s.opts.Dimension {
		return nil, fmt.Errorf("milvus: the query vector has %d dimensions, the collection holds %d", len(q.Vector), s.opts.Dimension)
	}
	var sparse entity.SparseEmbedding
	if wantSparse {
		var err error
		if sparse, err = sparseEmbedding(q.Sparse); err != nil {
			return nil, fmt.Errorf("milvus: query: %w", err)
		}
		if sparse.Len() == 0 {
			if !wantDense {
				return []knowledge.Hit{}, nil // no terms, no keyword matches
			}
			wantSparse = false
		}
	}
	expr, none, err := searchExpr(knowledgeID, q.Filters)
	if err != nil {
		return nil, fmt.Errorf("milvus: %w", err)
	}
	if none {
		return []knowledge.Hit{}, nil
	}
	c, err := s.ensure(ctx)
	if err != nil {
		return nil, err
	}

	// Candidates per sub-search of a hybrid search; HNSW needs ef >= limit.
	pool := min(max(2*topK, hybridMinPool), maxTopK)
	ef := max(topK, hnswMinEf)
	if mode == knowledge.ModeHybrid {
		ef = max(pool, hnswMinEf)
	}
	denseParam, err := entity.NewIndexHNSWSearchParam(ef)
	if err != nil {
		return nil, err
	}
	sparseParam, err := entity.NewIndexSparseInvertedSearchParam(0)
	if err != nil {
		return nil, err
	}
	var results, keywordResults []client.SearchResult
	what := fmt.Sprintf("%s search in collection %s", mode, s.opts.Collection)
	err = s.do(ctx, what, func(ctx context.Context) error {
		var err error
		switch mode {
		case knowledge.ModeVector:
			results, err = c.Search(ctx, s.opts.Collection, nil, expr, outputFields,
				[]entity.Vector{entity.FloatVector(q.Vector)}, fieldDense, entity.IP, topK, denseParam)
		case knowledge.ModeKeyword:
			results, err = c.Search(ctx, s.opts.Collection, nil, expr, outputFields,
				[]entity.Vector{sparse}, fieldSparse, entity.IP, topK, sparseParam)
		default:
			// Both lists with their raw scores, fused here: Milvus'
			// rerankers report RRF or arctan-squashed scores, not the
			// readable hybrid score (knowledge.HybridScore).
			if wantDense {
				if results, err = c.Search(ctx, s.opts.Collection, nil, expr, outputFields,
					[]entity.Vector{entity.FloatVector(q.Vector)}, fieldDense, entity.IP, pool, denseParam); err != nil {
					return err
				}
			}
			if wantSparse {
				keywordResults, err = c.Search(ctx, s.opts.Collection, nil, expr, outputFields,
					[]entity.Vector{sparse}, fieldSparse, entity.IP, pool, sparseParam)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	hits, err := toHits(results)
	if err != nil {
		return nil, fmt.Errorf("milvus at %s: %s: %w", s.opts.Address, what, err)
	}
	if mode == knowledge.ModeHybrid {
		keyword, err := toHits(keywordResults)
		if err != nil {
			return nil, fmt.Errorf("milvus at %s: %s: %w", s.opts.Address, what, err)
		}
		return knowledge.FuseScores(topK, knowledge.IDFMass(q.Sparse), hits, keyword), nil
	}
	knowledge.SortHits(hits)
	if len(hits) > topK {
		hits = hits[:topK]
	}
	return hits, nil
}

// toHits reads the hits of a one-query search.
func toHits(results []client.SearchResult) ([]knowledge.Hit, error) {
	hits := []knowledge.Hit{}
	// The SDK drops a query's result when its ids cannot be read, and flags
	// (in Err) the missing output columns of an empty result: an empty
	// result is just that.
	if len(results) == 0 || results[0].ResultCount == 0 {
		return hits, nil
	}
	r := results[0]
	if r.Err != nil {
		return nil, r.Err
	}
	ids, ok := r.IDs.(*entity.ColumnVarChar)
	if !ok {
		return nil, fmt.Errorf("unexpected id column %T", r.IDs)
	}
	var (
		docs, kbs, texts *entity.ColumnVarChar
		metas            *entity.ColumnJSONBytes
	)
	for _, f := range []struct {
		name string
		into any
	}{{fieldDocument, &docs}, {fieldKnowledge, &kbs}, {fieldText, &texts}, {fieldMetadata, &metas}} {
		col := r.Fields.GetColumn(f.name)
		if col == nil {
			return nil, fmt.Errorf("the result has no %s column", f.name)
		}
		var ok bool
		switch into := f.into.(type) {
		case **entity.ColumnVarChar:
			*into, ok = col.(*entity.ColumnVarChar)
		case **entity.ColumnJSONBytes:
			*into, ok = col.(*entity.ColumnJSONBytes)
		}
		if !ok {
			return nil, fmt.Errorf("unexpected %s column %T", f.name, col)
		}
	}
	n := r.ResultCount
	if ids.Len() < n || docs.Len() < n || kbs.Len() < n || texts.Len() < n || metas.Len() < n || len(r.Scores) < n {
		return nil, errors.New("the result has fewer rows than it announces")
	}
	for i := range n {
		h := knowledge.Hit{Score: float64(r.Scores[i])}
		h.ID = ids.Data()[i]
		h.DocumentID = docs.Data()[i]
		h.KnowledgeID = kbs.Data()[i]
		h.Text = texts.Data()[i]
		if err := decodeMetadata(metas.Data()[i], &h.Chunk); err != nil {
			return nil, err
		}
		hits = append(hits, h)
	}
	return hits, nil
}
