package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
)

var _ embedded.ChangeFeed = (*Knowledge)(nil)

// knowledgeChangesLockKey is the PostgreSQL advisory lock that orders the
// appends to knowledge_changes ("troupek" in ASCII): held to commit, it makes
// seq order commit order, so a replica that has read up to seq n never sees a
// smaller number commit later.
const knowledgeChangesLockKey = 0x74726f7570656b

// KnowledgeChangeRetention is how long the change feed keeps a change: a
// replica that falls further behind than this (its database unreachable)
// misses changes until it restarts and reloads its index.
const KnowledgeChangeRetention = 24 * time.Hour

// logChanges appends the documents of records to the change feed, once each,
// and purges the changes older than KnowledgeChangeRetention. tx is the
// transaction that wrote the chunks, so the change commits with them.
func (k *Knowledge) logChanges(ctx context.Context, tx *sql.Tx, records []knowledge.ChunkRecord) error {
	if len(records) == 0 {
		return nil
	}
	if k.db.dialect == DialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(knowledgeChangesLockKey)); err != nil {
			return fmt.Errorf("ordering the knowledge change feed: %w", err)
		}
	}
	type doc struct{ kb, id string }
	seen := map[doc]bool{}
	at := now()
	for _, r := range records {
		d := doc{r.Chunk.KnowledgeID, r.Chunk.DocumentID}
		if seen[d] {
			continue
		}
		seen[d] = true
		if _, err := tx.ExecContext(ctx, `INSERT INTO knowledge_changes (knowledge_id, document_id, created_at) VALUES ($1, $2, $3)`,
			d.kb, d.id, k.db.timeArg(at)); err != nil {
			return fmt.Errorf("appending to the knowledge change feed: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM knowledge_changes WHERE created_at < $1`, k.db.timeArg(at.Add(-KnowledgeChangeRetention))); err != nil {
		return fmt.Errorf("purging the knowledge change feed: %w", err)
	}
	return nil
}

// LastChange implements embedded.ChangeFeed.
func (k *Knowledge) LastChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := k.db.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM knowledge_changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("store: reading the knowledge change feed: %w", err)
	}
	return seq, nil
}

// Changes implements embedded.ChangeFeed.
func (k *Knowledge) Changes(ctx context.Context, after int64, limit int, fn func(seq int64, knowledgeID, documentID string) error) error {
	rows, err := k.db.r.QueryContext(ctx, `SELECT seq, knowledge_id, document_id FROM knowledge_changes WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return fmt.Errorf("store: reading the knowledge change feed: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var kb, doc string
		if err := rows.Scan(&seq, &kb, &doc); err != nil {
			return fmt.Errorf("store: reading the knowledge change feed: %w", err)
		}
		if err := fn(seq, kb, doc); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: reading the knowledge change feed: %w", err)
	}
	return nil
}

// LoadDocument implements embedded.ChangeFeed: the chunks of one document,
// without their texts.
func (k *Knowledge) LoadDocument(ctx context.Context, knowledgeID, documentID string, fn func(knowledge.ChunkRecord) error) error {
	return k.loadChunks(ctx, fn, `WHERE knowledge_id = $1 AND document_id = $2 ORDER BY id`, knowledgeID, documentID)
}
