package jobs

import (
	"context"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
)

// IngestArgs are the arguments of a knowledge document's ingestion.
type IngestArgs struct {
	DocumentID string `json:"document_id"`
}

// Summary names the document.
func (a IngestArgs) Summary() map[string]string {
	return map[string]string{"document_id": a.DocumentID}
}

// Kind names the ingestion kind.
func (IngestArgs) Kind() string { return "knowledge_ingest" }

// Ingest is the ingestion of one knowledge document. The document id is the
// hash of its knowledge base and content, so a unique job per id makes a
// re-upload of the same bytes a no-op while the first is queued or running.
// An attempt that fails is recorded on the document (its status says why)
// and is not retried; an attempt cut short by a shutdown is retried by the
// next client. Large documents take long, hence no timeout.
var Ingest = Kind[IngestArgs]{Unique: true, Timeout: NoTimeout}

// Ingester ingests one document (knowledge's kb.Service).
type Ingester interface {
	Ingest(ctx context.Context, documentID string) error
}

// RegisterIngestion makes clients built on r ingest documents with ing.
// When ing can also read documents, the queue pages name each document's
// knowledge base.
func RegisterIngestion(r *Registry, ing Ingester) {
	Register(r, Ingest, func(ctx context.Context, a IngestArgs) error { return ing.Ingest(ctx, a.DocumentID) })
	if docs, ok := ing.(documentReader); ok {
		r.summaries[IngestArgs{}.Kind()] = func(ctx context.Context, raw []byte) map[string]string {
			s := summarize[IngestArgs](ctx, raw)
			if s == nil {
				return nil
			}
			// The knowledge base is not in the arguments (the document id
			// is the queue's uniqueness key): it is read from the document,
			// which may be gone.
			if d, err := docs.Get(ctx, s["document_id"]); err == nil {
				s["knowledge"] = d.KnowledgeID
			}
			return s
		}
	}
}

// documentReader reads a document (knowledge's kb.Service).
type documentReader interface {
	Get(ctx context.Context, id string) (*knowledge.Document, error)
}

// IngestQueue queues documents for ingestion on a client; it is the queue of
// knowledge's kb.Service.
type IngestQueue struct{ Client *Client }

// Enqueue queues a document's ingestion unless it is already queued or
// running.
func (q IngestQueue) Enqueue(ctx context.Context, documentID string) error {
	_, err := Enqueue(ctx, q.Client, Ingest, IngestArgs{DocumentID: documentID})
	return err
}

// Requeue queues a document's ingestion again (a retry, a re-index): the
// document's previous job may still be being recorded as finished, so a
// running one is waited for, briefly, instead of counting as queued.
func (q IngestQueue) Requeue(ctx context.Context, documentID string) error {
	_, err := EnqueueAfterRunning(ctx, q.Client, Ingest, IngestArgs{DocumentID: documentID}, 5*time.Second)
	return err
}
