package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

// Knowledge returns the knowledge side of the store: documents (the ingestion
// queue), chunks (the embedded index's persistence) and BM25 statistics.
func (db *DB) Knowledge() *Knowledge { return &Knowledge{db: db} }

// Knowledge persists knowledge bases in the store's database.
type Knowledge struct{ db *DB }

var (
	_ knowledge.Documents       = (*Knowledge)(nil)
	_ knowledge.StatsStore      = (*Knowledge)(nil)
	_ knowledge.ChunkRepository = (*Knowledge)(nil)
)

const docColumns = `id, knowledge_id, name, description, type, source, metadata, size, status, message, progress,
	chunks, attempts, chunk_strategy, chunk_size, chunk_overlap, created_at, updated_at`

func (k *Knowledge) docArgs(d *knowledge.Document) ([]any, error) {
	md, err := jsonArg(orEmpty(d.Metadata))
	if err != nil {
		return nil, fmt.Errorf("encoding metadata: %w", err)
	}
	db := k.db
	return []any{d.ID, d.KnowledgeID, text(d.Name), text(d.Description), d.Type, text(d.Source), md, d.Size, d.Status, text(d.Message),
		d.Progress, d.Chunks, d.Attempts, d.ChunkStrategy, d.ChunkSize, d.ChunkOverlap,
		db.timeArg(normTime(d.CreatedAt)), db.timeArg(normTime(d.UpdatedAt))}, nil
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func scanDoc(sc scanner) (knowledge.Document, error) {
	var d knowledge.Document
	var md []byte
	err := sc.Scan(&d.ID, &d.KnowledgeID, &d.Name, &d.Description, &d.Type, &d.Source, &md, &d.Size, &d.Status, &d.Message, &d.Progress,
		&d.Chunks, &d.Attempts, &d.ChunkStrategy, &d.ChunkSize, &d.ChunkOverlap, timeDest{&d.CreatedAt}, timeDest{&d.UpdatedAt})
	if err != nil {
		return d, err
	}
	if err := decodeJSON(md, &d.Metadata); err != nil {
		return d, fmt.Errorf("decoding metadata: %w", err)
	}
	if len(d.Metadata) == 0 {
		d.Metadata = nil
	}
	return d, nil
}

// Create implements knowledge.Documents: it inserts the document unless one with the
// same id exists, which it returns instead.
func (k *Knowledge) Create(ctx context.Context, d *knowledge.Document, content []byte) (*knowledge.Document, bool, error) {
	args, err := k.docArgs(d)
	if err != nil {
		return nil, false, err
	}
	var created bool
	err = k.db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO knowledge_documents (`+docColumns+`, content)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) ON CONFLICT (id) DO NOTHING`,
			append(args, content)...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		created = n == 1
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: creating document: %w", err)
	}
	if created {
		return d, true, nil
	}
	existing, err := k.Get(ctx, d.ID)
	return existing, false, err
}

// Get implements knowledge.Documents.
func (k *Knowledge) Get(ctx context.Context, id string) (*knowledge.Document, error) {
	d, err := scanDoc(k.db.r.QueryRowContext(ctx, `SELECT `+docColumns+` FROM knowledge_documents WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("document %q: %w", id, knowledge.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: getting document: %w", err)
	}
	return &d, nil
}

// Content implements knowledge.Documents.
func (k *Knowledge) Content(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := k.db.r.QueryRowContext(ctx, `SELECT content FROM knowledge_documents WHERE id = $1`, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("document %q: %w", id, knowledge.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading document content: %w", err)
	}
	return b, nil
}

// Counts implements knowledge.Documents: one grouped count, where the
// console and the metrics would otherwise count each base and status apart.
func (k *Knowledge) Counts(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := k.db.r.QueryContext(ctx, `SELECT knowledge_id, status, COUNT(*) FROM knowledge_documents GROUP BY knowledge_id, status`)
	if err != nil {
		return nil, fmt.Errorf("store: counting documents: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var base, status string
		var n int
		if err := rows.Scan(&base, &status, &n); err != nil {
			return nil, fmt.Errorf("store: counting documents: %w", err)
		}
		if out[base] == nil {
			out[base] = map[string]int{}
		}
		out[base][status] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: counting documents: %w", err)
	}
	return out, nil
}

// List implements knowledge.Documents.
func (k *Knowledge) List(ctx context.Context, q knowledge.DocumentQuery) ([]knowledge.Document, int, error) {
	var where []string
	var args []any
	if q.KnowledgeID != "" {
		args = append(args, q.KnowledgeID)
		where = append(where, fmt.Sprintf("knowledge_id = $%d", len(args)))
	}
	if q.Status != "" {
		args = append(args, q.Status)
		where = append(where, fmt.Sprintf("status = $%d", len(args)))
	}
	w := ""
	if len(where) > 0 {
		w = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := k.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM knowledge_documents`+w, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: counting documents: %w", err)
	}
	col := map[string]string{"": "created_at", "created_at": "created_at", "updated_at": "updated_at", "name": "name", "size": "size"}[q.SortBy]
	if col == "" {
		return nil, 0, fmt.Errorf("store: %w: cannot sort documents by %q", ErrInvalid, q.SortBy)
	}
	dir := "DESC"
	if q.SortOrder == "asc" {
		dir = "ASC"
	}
	limit, page := q.Limit, q.Page
	if limit <= 0 {
		limit = DefaultLimit
	}
	if page <= 0 {
		page = 1
	}
	args = append(args, limit, (page-1)*limit)
	rows, err := k.db.r.QueryContext(ctx, fmt.Sprintf(`SELECT `+docColumns+` FROM knowledge_documents%s ORDER BY %s %s, id LIMIT $%d OFFSET $%d`,
		w, col, dir, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: listing documents: %w", err)
	}
	defer rows.Close()
	var out []knowledge.Document
	for rows.Next() {
		d, err := scanDoc(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("store: listing documents: %w", err)
		}
		out = append(out, d)
	}
	return out, total, rows.Err()
}

// Update implements knowledge.Documents.
func (k *Knowledge) Update(ctx context.Context, d *knowledge.Document) error {
	md, err := jsonArg(orEmpty(d.Metadata))
	if err != nil {
		return fmt.Errorf("encoding metadata: %w", err)
	}
	db := k.db
	var n int64
	err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE knowledge_documents SET name = $1, description = $2, metadata = $3, status = $4, message = $5,
			progress = $6, chunks = $7, attempts = $8, updated_at = $9 WHERE id = $10`,
			text(d.Name), text(d.Description), md, d.Status, text(d.Message), d.Progress, d.Chunks, d.Attempts, db.timeArg(normTime(d.UpdatedAt)), d.ID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("store: updating document: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("document %q: %w", d.ID, knowledge.ErrNotFound)
	}
	return nil
}

// Delete implements knowledge.Documents. The document's chunks are deleted by the
// vector store (kb.Service), which knows where they live.
func (k *Knowledge) Delete(ctx context.Context, id string) error {
	var n int64
	err := k.db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM knowledge_documents WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		// kb.Service takes the document's share out of its base's
		// statistics first; a share left behind (its base was no longer
		// configured) must not be taken out of a later upload of the
		// same bytes, which has the same id.
		_, err = tx.ExecContext(ctx, `DELETE FROM knowledge_document_stats WHERE document_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: deleting document: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("document %q: %w", id, knowledge.ErrNotFound)
	}
	return nil
}

// Pending implements knowledge.Documents.
func (k *Knowledge) Pending(ctx context.Context) ([]knowledge.Document, error) {
	docs, _, err := k.List(ctx, knowledge.DocumentQuery{Status: knowledge.StatusProcessing, Limit: math.MaxInt32, SortOrder: "asc"})
	return docs, err
}

// Sources implements knowledge.Documents.
func (k *Knowledge) Sources(ctx context.Context, knowledgeID string) (map[string]knowledge.Document, error) {
	rows, err := k.db.r.QueryContext(ctx, `SELECT `+docColumns+` FROM knowledge_documents
		WHERE knowledge_id = $1 AND (source LIKE 'file:%' OR source LIKE 'url:%')`, knowledgeID)
	if err != nil {
		return nil, fmt.Errorf("store: listing source documents: %w", err)
	}
	defer rows.Close()
	out := map[string]knowledge.Document{}
	for rows.Next() {
		d, err := scanDoc(rows)
		if err != nil {
			return nil, fmt.Errorf("store: listing source documents: %w", err)
		}
		out[d.Source] = d
	}
	return out, rows.Err()
}

// BySource implements knowledge.Documents.
func (k *Knowledge) BySource(ctx context.Context, knowledgeID, source string) ([]knowledge.Document, error) {
	rows, err := k.db.r.QueryContext(ctx, `SELECT `+docColumns+` FROM knowledge_documents
		WHERE knowledge_id = $1 AND source = $2 ORDER BY id`, knowledgeID, source)
	if err != nil {
		return nil, fmt.Errorf("store: listing documents by source: %w", err)
	}
	defer rows.Close()
	var out []knowledge.Document
	for rows.Next() {
		d, err := scanDoc(rows)
		if err != nil {
			return nil, fmt.Errorf("store: listing documents by source: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// LoadStats implements knowledge.StatsStore.
func (k *Knowledge) LoadStats(ctx context.Context, knowledgeID string) (*bm25.Stats, error) {
	s, err := k.loadStats(ctx, `SELECT stats FROM knowledge_stats WHERE knowledge_id = $1`, knowledgeID)
	if err != nil {
		return nil, fmt.Errorf("store: loading the keyword statistics of %s: %w", knowledgeID, err)
	}
	return s, nil
}

// LoadDocumentStats implements knowledge.StatsStore.
func (k *Knowledge) LoadDocumentStats(ctx context.Context, knowledgeID, documentID string) (*bm25.Stats, error) {
	s, err := k.loadStats(ctx, `SELECT stats FROM knowledge_document_stats WHERE knowledge_id = $1 AND document_id = $2`, knowledgeID, documentID)
	if err != nil {
		return nil, fmt.Errorf("store: loading the keyword statistics of document %s: %w", documentID, err)
	}
	return s, nil
}

// loadStats reads the one JSON-encoded bm25.Stats query selects; nil when
// there is none.
func (k *Knowledge) loadStats(ctx context.Context, query string, args ...any) (*bm25.Stats, error) {
	return scanStats(k.db.r.QueryRowContext(ctx, query, args...))
}

// ReplaceDocumentStats implements knowledge.StatsStore: it reads the base's
// totals and the document's previous share, swaps the share, and writes
// both back in one transaction. On PostgreSQL the totals' row is locked
// (created first if need be) so that replicas ingesting into one base take
// turns; on SQLite the writer's transaction already does.
func (k *Knowledge) ReplaceDocumentStats(ctx context.Context, knowledgeID, documentID string, share *bm25.Stats) (*bm25.Stats, error) {
	var shareJSON []byte
	if share != nil {
		var err error
		if shareJSON, err = json.Marshal(share); err != nil {
			return nil, fmt.Errorf("store: encoding keyword statistics: %w", err)
		}
	}
	db := k.db
	lock := ""
	if db.dialect == DialectPostgres {
		lock = " FOR UPDATE"
	}
	var next bm25.Stats
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		empty, err := json.Marshal(bm25.Stats{DF: map[uint32]int{}})
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO knowledge_stats (knowledge_id, stats, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (knowledge_id) DO NOTHING`, knowledgeID, empty, db.timeArg(now())); err != nil {
			return err
		}
		total, err := scanStats(tx.QueryRowContext(ctx, `SELECT stats FROM knowledge_stats WHERE knowledge_id = $1`+lock, knowledgeID))
		if err != nil {
			return fmt.Errorf("reading the totals: %w", err)
		}
		prev, err := scanStats(tx.QueryRowContext(ctx, `SELECT stats FROM knowledge_document_stats WHERE knowledge_id = $1 AND document_id = $2`, knowledgeID, documentID))
		if err != nil {
			return fmt.Errorf("reading the document's share: %w", err)
		}
		next = bm25.Stats{DF: map[uint32]int{}}
		if total != nil {
			next = total.Clone()
		}
		next.Subtract(prev)
		next.Merge(share)
		b, err := json.Marshal(&next)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE knowledge_stats SET stats = $2, updated_at = $3 WHERE knowledge_id = $1`,
			knowledgeID, b, db.timeArg(now())); err != nil {
			return err
		}
		if shareJSON == nil {
			_, err = tx.ExecContext(ctx, `DELETE FROM knowledge_document_stats WHERE knowledge_id = $1 AND document_id = $2`, knowledgeID, documentID)
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO knowledge_document_stats (knowledge_id, document_id, stats) VALUES ($1, $2, $3)
			ON CONFLICT (knowledge_id, document_id) DO UPDATE SET stats = excluded.stats`, knowledgeID, documentID, shareJSON)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: saving the keyword statistics of %s: %w", knowledgeID, err)
	}
	return &next, nil
}

// scanStats decodes the one JSON-encoded bm25.Stats row gives; nil when
// there is none.
func scanStats(row *sql.Row) (*bm25.Stats, error) {
	var b []byte
	err := row.Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s bm25.Stats
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	return &s, nil
}

// Load implements knowledge.ChunkRepository: every chunk, without its text.
func (k *Knowledge) Load(ctx context.Context, fn func(knowledge.ChunkRecord) error) error {
	return k.loadChunks(ctx, fn, `ORDER BY knowledge_id, id`)
}

// loadChunks streams the chunks that the rest of the query (a WHERE and
// ORDER BY) selects to fn.
func (k *Knowledge) loadChunks(ctx context.Context, fn func(knowledge.ChunkRecord) error, rest string, args ...any) error {
	rows, err := k.db.r.QueryContext(ctx, `SELECT id, knowledge_id, document_id, document_name, idx, page, heading, metadata, dense, sparse, len
		FROM knowledge_chunks `+rest, args...)
	if err != nil {
		return fmt.Errorf("store: loading chunks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r knowledge.ChunkRecord
		var md, dense, sparse []byte
		c := &r.Chunk
		if err := rows.Scan(&c.ID, &c.KnowledgeID, &c.DocumentID, &c.Document, &c.Index, &c.Page, &c.Heading, &md, &dense, &sparse, &r.Len); err != nil {
			return fmt.Errorf("store: loading chunks: %w", err)
		}
		if err := decodeJSON(md, &c.Metadata); err != nil {
			return fmt.Errorf("store: decoding chunk metadata: %w", err)
		}
		r.Dense, r.Sparse = decodeDense(dense), decodeSparse(sparse)
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Put implements knowledge.ChunkRepository.
func (k *Knowledge) Put(ctx context.Context, records []knowledge.ChunkRecord) error {
	err := k.db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, r := range records {
			c := r.Chunk
			md, err := jsonArg(c.Metadata)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO knowledge_chunks (id, knowledge_id, document_id, document_name, idx, text, page, heading, metadata, dense, sparse, len)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
				ON CONFLICT (id) DO UPDATE SET knowledge_id = excluded.knowledge_id, document_id = excluded.document_id,
					document_name = excluded.document_name, idx = excluded.idx, text = excluded.text, page = excluded.page,
					heading = excluded.heading, metadata = excluded.metadata, dense = excluded.dense, sparse = excluded.sparse, len = excluded.len`,
				c.ID, c.KnowledgeID, c.DocumentID, text(c.Document), c.Index, text(c.Text), c.Page, text(c.Heading), md,
				encodeDense(r.Dense), encodeSparse(r.Sparse), r.Len); err != nil {
				return err
			}
		}
		return k.logChanges(ctx, tx, records)
	})
	if err != nil {
		return fmt.Errorf("store: writing chunks: %w", err)
	}
	return nil
}

// DeleteDocument implements knowledge.ChunkRepository.
func (k *Knowledge) DeleteDocument(ctx context.Context, knowledgeID, documentID string) ([]string, error) {
	var ids []string
	err := k.db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		ids = ids[:0]
		rows, err := tx.QueryContext(ctx, `SELECT id FROM knowledge_chunks WHERE knowledge_id = $1 AND document_id = $2`, knowledgeID, documentID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM knowledge_chunks WHERE knowledge_id = $1 AND document_id = $2`, knowledgeID, documentID); err != nil {
			return err
		}
		return k.logChanges(ctx, tx, []knowledge.ChunkRecord{{Chunk: knowledge.Chunk{KnowledgeID: knowledgeID, DocumentID: documentID}}})
	})
	if err != nil {
		return nil, fmt.Errorf("store: deleting chunks: %w", err)
	}
	return slices.Clone(ids), nil
}

// Texts implements knowledge.ChunkRepository.
func (k *Knowledge) Texts(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for batch := range slices.Chunk(ids, idBatch) {
		var q strings.Builder
		q.WriteString(`SELECT id, text FROM knowledge_chunks WHERE id IN `)
		placeholders(&q, 0, len(batch))
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		rows, err := k.db.r.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("store: reading chunk texts: %w", err)
		}
		for rows.Next() {
			var id, t string
			if err := rows.Scan(&id, &t); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: reading chunk texts: %w", err)
			}
			out[id] = t
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Vectors are stored as little-endian float32s; sparse vectors as (uint32
// term id, float32 weight) pairs sorted by term id: compact, and identical on
// both databases.
func encodeDense(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

func decodeDense(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func encodeSparse(m map[uint32]float32) []byte {
	ids := bm25.SortedIDs(m)
	b := make([]byte, 8*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint32(b[8*i:], id)
		binary.LittleEndian.PutUint32(b[8*i+4:], math.Float32bits(m[id]))
	}
	return b
}

func decodeSparse(b []byte) map[uint32]float32 {
	m := make(map[uint32]float32, len(b)/8)
	for i := 0; i+8 <= len(b); i += 8 {
		m[binary.LittleEndian.Uint32(b[i:])] = math.Float32frombits(binary.LittleEndian.Uint32(b[i+4:]))
	}
	return m
}

// SourceFetches returns what the URL sources of a knowledge base answered
// last, by URL.
func (k *Knowledge) SourceFetches(ctx context.Context, knowledgeID string) (map[string]knowledge.SourceFetch, error) {
	rows, err := k.db.r.QueryContext(ctx, `SELECT url, etag, last_modified, fetched_at FROM knowledge_fetches WHERE knowledge_id = $1`, knowledgeID)
	if err != nil {
		return nil, fmt.Errorf("store: loading the URL source fetches of %s: %w", knowledgeID, err)
	}
	defer rows.Close()
	out := map[string]knowledge.SourceFetch{}
	for rows.Next() {
		f := knowledge.SourceFetch{KnowledgeID: knowledgeID}
		if err := rows.Scan(&f.URL, &f.ETag, &f.LastModified, timeDest{&f.FetchedAt}); err != nil {
			return nil, fmt.Errorf("store: loading the URL source fetches of %s: %w", knowledgeID, err)
		}
		out[f.URL] = f
	}
	return out, rows.Err()
}

// SaveSourceFetch records what a URL source answered, replacing what it
// answered before.
func (k *Knowledge) SaveSourceFetch(ctx context.Context, f knowledge.SourceFetch) error {
	err := k.db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO knowledge_fetches (knowledge_id, url, etag, last_modified, fetched_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (knowledge_id, url) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified, fetched_at = excluded.fetched_at`,
			f.KnowledgeID, f.URL, f.ETag, f.LastModified, k.db.timeArg(f.FetchedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: recording the fetch of %s: %w", f.URL, err)
	}
	return nil
}
