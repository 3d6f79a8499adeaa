package kb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
	"github.com/troupehq/troupe/engine/knowledge/chunk"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
	"github.com/troupehq/troupe/engine/knowledge/reader"
	"github.com/troupehq/troupe/spec"
)

// DefaultMaxBytes bounds one document (uploads and sources).
const DefaultMaxBytes = 50 << 20

// LocalDimension is the dimension of the local embedder: enough for good
// hashing quality, small enough that exact search over 100k chunks stays fast.
const LocalDimension = 384

// Options configure a Service.
type Options struct {
	Documents knowledge.Documents
	// Chunks persists the embedded index (SQL in production, memory in tests).
	Chunks knowledge.ChunkRepository
	// Stats persists BM25 statistics of knowledge bases whose vectors live
	// outside the process (Milvus); nil keeps them in memory only.
	Stats knowledge.StatsStore
	// NewMilvus opens a Milvus-backed store; nil makes milvus knowledge bases
	// fail with a clear message.
	NewMilvus func(ctx context.Context, k *spec.Knowledge, dimension int) (knowledge.VectorStore, error)
	// NewEmbedder overrides how embedders are built from specs (tests);
	// nil builds the local or OpenAI-wire embedder the spec names.
	NewEmbedder func(k *spec.Knowledge) (knowledge.Embedder, error)
	Env         spec.Env
	// Queue queues ingestions durably (the job engine: jobs.IngestQueue,
	// whose worker calls Ingest). Nil ingests each document at once,
	// inside the call that submits it: for one-shot commands, which have
	// no job engine and wait for their documents anyway.
	Queue    Queue
	MaxBytes int64 // per document (default DefaultMaxBytes)
	// MaxChunks bounds the chunks of one document (default
	// chunk.DefaultMaxPieces); a document that would make more fails with
	// a message saying so, before anything is embedded or stored.
	MaxChunks int
	// HTTPClient fetches URL sources and uploads; it should refuse private
	// addresses (egress policy). Nil means http.DefaultClient.
	HTTPClient *http.Client
	// Fetches persists what URL sources answered last (the store), so
	// that a restart or another replica keeps their refresh interval and
	// validators; nil keeps them in this process's memory only.
	Fetches Fetches
	// HostsClient returns the client for a knowledge base that lists
	// allowed_hosts: the egress policy with those hosts let through (and
	// only those). Nil means HTTPClient for every base.
	HostsClient func(allowedHosts []string) *http.Client
	// NewReranker overrides how a base's rerank: is served (tests); nil
	// calls the /rerank wire of the Model it names.
	NewReranker func(k *spec.Knowledge) (Reranker, error)
	// RerankHTTPClient calls rerankers; nil means http.DefaultClient. Like
	// a model's base_url, a reranker's is the operator's choice, so it is
	// not held to the egress policy of URL sources.
	RerankHTTPClient *http.Client
	Logger           *slog.Logger
	Now              func() time.Time
}

// Fetches persists what URL sources answered last.
type Fetches interface {
	// SourceFetches returns a knowledge base's, by URL.
	SourceFetches(ctx context.Context, knowledgeID string) (map[string]knowledge.SourceFetch, error)
	SaveSourceFetch(ctx context.Context, f knowledge.SourceFetch) error
}

// Queue queues a document's ingestion durably; the job engine's worker then
// calls Service.Ingest, on this process or another sharing the database.
// Enqueueing a document already queued or being ingested is a no-op.
type Queue interface {
	Enqueue(ctx context.Context, documentID string) error
	// Requeue queues a document whose last ingestion ended (a retry, a
	// re-index); its job may still be being recorded as finished and
	// must not count as queued.
	Requeue(ctx context.Context, documentID string) error
}

// Service runs knowledge bases. Configure it with each snapshot's knowledge
// specs; Run syncs their sources, and the job engine runs ingestions
// (Ingest) from the Queue.
type Service struct {
	opts Options
	log  *slog.Logger

	embedded *embedded.Store

	rerankFallbacks atomic.Int64

	mu    sync.RWMutex
	bases map[string]*base
	// running are the ingestions running in this process, so that Delete
	// can stop the one of the document it deletes. (Which documents are
	// queued, and that none is ingested twice, is the job engine's.)
	running map[string]context.CancelCauseFunc

	sync chan struct{} // sources need syncing
	// configured is set by the first Configure; returned holds the bases
	// a later one added (under mu), until resume queues their documents.
	configured bool
	returned   map[string]bool
	// reembed holds the bases whose vectors another embedder made (under
	// mu), with why, until the run loop re-embeds them: see reembedBases.
	reembed map[string]string

	// syncMu serializes source syncs (the run loop's and forced ones) and
	// guards stamps.
	syncMu sync.Mutex
	// stamps are, by knowledge base then source key, what each file source
	// looked like when a sync last read it: an unchanged file is not read
	// again (see unchangedSince).
	stamps map[string]map[string]fileStamp
	// fetchMu guards fetched (URL sources' validators) and clients (by
	// allowed_hosts).
	fetchMu sync.Mutex
	fetched map[string]fetchState
	loaded  map[string]bool // bases whose fetches were read from Fetches
	clients map[string]*http.Client
}

// base is one configured knowledge base.
type base struct {
	spec     *spec.Knowledge
	embedder knowledge.Embedder
	store    knowledge.VectorStore
	external bool // vectors outside the process: BM25 stats kept here

	statsMu sync.Mutex
	stats   *bm25.Stats
	// statsGen counts this process's changes to stats (under statsMu), so
	// that a refresh read before one does not overwrite it.
	statsGen uint64

	// An external store holds a connection (Milvus: a gRPC client). When a
	// reload replaces or removes the base, the store is closed once the
	// searches and ingestions still using it are done: users counts them,
	// and retired is set when the base leaves the configuration, after
	// which no one can acquire it.
	users     atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
}

// release ends one use of the base taken by Service.acquire.
func (b *base) release(log *slog.Logger) {
	if b.users.Add(-1) == 0 && b.retired.Load() {
		b.close(log)
	}
}

// retire marks a base no longer configured; its store closes now, or when
// its last user releases it.
func (b *base) retire(log *slog.Logger) {
	b.retired.Store(true)
	if b.users.Load() == 0 {
		b.close(log)
	}
}

// close closes the base's own store; the embedded store is shared by every
// base and lives as long as the service.
func (b *base) close(log *slog.Logger) {
	b.closeOnce.Do(func() {
		c, ok := b.store.(io.Closer)
		if !b.external || !ok {
			return
		}
		if err := c.Close(); err != nil {
			log.Warn("closing the store of a knowledge base", "knowledge", b.spec.Name, "err", err)
		}
	})
}

// Errors that map to HTTP statuses.
var (
	ErrTooLarge    = errors.New("document too large")
	ErrUnsupported = reader.ErrUnsupported
	// ErrInvalid reports an upload whose options are out of range.
	ErrInvalid = errors.New("invalid upload")
	// ErrInvalidSearch reports a search asked for with values out of range
	// (the API answers it 422).
	ErrInvalidSearch = errors.New("invalid search")
	errDeleted       = errors.New("document deleted")
	// errUnconfigured: the document's knowledge base is not configured (any
	// more); its documents wait for it, see StatusOrphaned.
	errUnconfigured = errors.New("knowledge base not configured")
)

// New opens the service: it loads the embedded index from its repository.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxChunks <= 0 {
		opts.MaxChunks = chunk.DefaultMaxPieces
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.Chunks == nil {
		opts.Chunks = embedded.NewMemoryRepository()
	}
	if opts.Stats == nil {
		opts.Stats = &MemoryStats{}
	}
	emb, err := embedded.Open(ctx, opts.Chunks, embedded.Options{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("loading the embedded knowledge index: %w", err)
	}
	return &Service{
		opts: opts, log: opts.Logger, embedded: emb,
		bases: map[string]*base{}, running: map[string]context.CancelCauseFunc{},
		sync: make(chan struct{}, 1),
	}, nil
}

// Configure applies the knowledge bases of a snapshot. Unchanged bases keep
// their stores; sources are synced by the run loop.
func (s *Service) Configure(ctx context.Context, specs []*spec.Knowledge) {
	next := map[string]*base{}
	reembed := map[string]string{}
	s.mu.RLock()
	prev := maps.Clone(s.bases)
	s.mu.RUnlock()
	for _, k := range specs {
		// A Model document the embedder names is written into k, so a
		// change to it shows in the embedder's key, not in k's hash.
		// So is the Model the reranker names (Snapshot.Knowledge).
		if b, ok := prev[k.Name]; ok && b.spec.Hash() == k.Hash() && b.spec.Embedder.Key() == k.Embedder.Key() && rerankModel(b.spec) == rerankModel(k) {
			next[k.Name] = b
			continue
		}
		b, err := s.open(ctx, k)
		if err != nil {
			s.log.Error("knowledge base unavailable", "knowledge", k.Name, "err", err)
			continue
		}
		next[k.Name] = b
		if why := s.staleVectors(prev[k.Name], b); why != "" {
			reembed[k.Name] = why
		}
	}
	s.mu.Lock()
	for name, why := range reembed {
		if s.reembed == nil {
			s.reembed = map[string]string{}
		}
		s.reembed[name] = why
	}
	s.bases = next
	if s.configured {
		for name := range next {
			if prev[name] == nil {
				if s.returned == nil {
					s.returned = map[string]bool{}
				}
				s.returned[name] = true
			}
		}
	}
	s.configured = true
	s.mu.Unlock()
	for name, b := range prev {
		if next[name] != b {
			b.retire(s.log)
		}
	}
	select {
	case s.sync <- struct{}{}:
	default:
	}
}

func (s *Service) open(ctx context.Context, k *spec.Knowledge) (*base, error) {
	b := &base{spec: k}
	switch {
	case s.opts.NewEmbedder != nil:
		e, err := s.opts.NewEmbedder(k)
		if err != nil {
			return nil, err
		}
		b.embedder = e
	default:
		e, err := s.newEmbedder(k)
		if err != nil {
			return nil, err
		}
		b.embedder = e
	}
	switch k.Store.Type {
	case "milvus":
		if s.opts.NewMilvus == nil {
			return nil, errors.New("milvus stores are not available in this process")
		}
		// A collection is created with its dimension, which a remote
		// embedder (openai/…, ollama/…) only knows after a first request.
		dim := b.embedder.Dimension()
		if p, ok := b.embedder.(interface {
			Probe(context.Context) (int, error)
		}); ok && dim == 0 {
			d, err := p.Probe(ctx)
			if err != nil {
				return nil, fmt.Errorf("learning the dimension of embedder %s: %w", k.Embedder.String(), err)
			}
			dim = d
		}
		st, err := s.opts.NewMilvus(ctx, k, dim)
		if err != nil {
			return nil, fmt.Errorf("opening milvus collection %s: %w", k.Store.Collection, err)
		}
		b.store, b.external = st, true
		b.stats = &bm25.Stats{DF: map[uint32]int{}}
		stats, err := s.opts.Stats.LoadStats(ctx, k.Name)
		if err != nil {
			// Searching with empty statistics would weigh every keyword
			// the same, and the next save would overwrite the real ones.
			b.close(s.log)
			return nil, fmt.Errorf("loading the keyword statistics of %s: %w", k.Name, err)
		}
		if stats != nil {
			b.stats = stats
		}
	default:
		b.store = s.embedded
	}
	return b, nil
}

// acquire returns a configured base for one use; the caller must release it
// (b.release) when done with its store.
func (s *Service) acquire(id string) (*base, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.bases[id]
	if !ok {
		return nil, fmt.Errorf("knowledge base %q: %w", id, knowledge.ErrNotFound)
	}
	b.users.Add(1)
	return b, nil
}

// has reports whether a knowledge base is configured.
func (s *Service) has(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.bases[id]
	return ok
}

// Close closes the stores of every knowledge base, once their current users
// are done. Call it after Run has returned and searches have stopped.
func (s *Service) Close() {
	s.mu.Lock()
	bases := s.bases
	s.bases = map[string]*base{}
	s.mu.Unlock()
	for _, b := range bases {
		b.retire(s.log)
	}
}

// Bases returns the configured knowledge bases' specs, sorted by name.
func (s *Service) Bases() []*spec.Knowledge {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*spec.Knowledge, 0, len(s.bases))
	for _, b := range s.bases {
		out = append(out, b.spec)
	}
	slices.SortFunc(out, func(a, b *spec.Knowledge) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Upload is a document to add.
type Upload struct {
	KnowledgeID   string
	Name          string
	Description   string
	Metadata      map[string]any
	Content       []byte
	Source        string // "upload" (default), "text", "url:<url>", "file:<path>"
	ChunkStrategy string
	ChunkSize     int
	ChunkOverlap  int
}

// Submit validates and stores a document, then queues it for ingestion. The
// same bytes in the same knowledge base are the same document: submitting
// them again returns the existing document (created false).
func (s *Service) Submit(ctx context.Context, u Upload) (*knowledge.Document, bool, error) {
	if !s.has(u.KnowledgeID) {
		return nil, false, fmt.Errorf("knowledge base %q: %w", u.KnowledgeID, knowledge.ErrNotFound)
	}
	if int64(len(u.Content)) > s.opts.MaxBytes {
		return nil, false, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(u.Content), s.opts.MaxBytes)
	}
	typ, err := reader.Detect(u.Name, u.Content)
	if err != nil {
		return nil, false, err
	}
	if u.ChunkStrategy != "" && !slices.Contains(chunk.Strategies, u.ChunkStrategy) {
		return nil, false, fmt.Errorf("%w: chunking strategy %q: use %s", ErrInvalid, u.ChunkStrategy, strings.Join(chunk.Strategies, ", "))
	}
	if u.ChunkSize != 0 {
		// An override is checked as a spec's chunking is: the stored
		// document is re-chunked with it on every retry and restart. (An
		// overlap without a size is ignored, as ingestion ignores it.)
		sizeErr, overlapErr := spec.CheckChunking(u.ChunkSize, u.ChunkOverlap)
		if err := errors.Join(sizeErr, overlapErr); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if u.Source == "" {
		u.Source = "upload"
	}
	now := s.opts.Now().UTC()
	d := &knowledge.Document{
		ID: knowledge.DocumentID(u.KnowledgeID, u.Content), KnowledgeID: u.KnowledgeID, Name: u.Name, Description: u.Description,
		Type: typ, Source: u.Source, Metadata: u.Metadata, Size: int64(len(u.Content)), Status: knowledge.StatusProcessing,
		ChunkStrategy: u.ChunkStrategy, ChunkSize: u.ChunkSize, ChunkOverlap: u.ChunkOverlap, CreatedAt: now, UpdatedAt: now,
	}
	existing, created, err := s.opts.Documents.Create(ctx, d, u.Content)
	if err != nil {
		return nil, false, fmt.Errorf("storing document: %w", err)
	}
	if !created {
		if existing.Status == knowledge.StatusProcessing {
			// Left unfinished, and asked for again: make sure it is
			// queued (a no-op if it is queued or being ingested).
			if err := s.enqueue(ctx, existing.ID); err != nil {
				return nil, false, err
			}
		}
		return existing, false, nil
	}
	if err := s.enqueue(ctx, d.ID); err != nil {
		return nil, false, err
	}
	return d, true, nil
}

// enqueue queues a processing document's ingestion, or without a Queue
// ingests it now. A document whose job could not be queued stays processing
// and is queued again when Run starts.
func (s *Service) enqueue(ctx context.Context, id string) error {
	if s.opts.Queue == nil {
		return s.Ingest(ctx, id)
	}
	if err := s.opts.Queue.Enqueue(ctx, id); err != nil {
		return fmt.Errorf("queueing the ingestion of %s: %w", id, err)
	}
	return nil
}

// requeue is enqueue for a document whose last ingestion ended.
func (s *Service) requeue(ctx context.Context, id string) error {
	if s.opts.Queue == nil {
		return s.Ingest(ctx, id)
	}
	if err := s.opts.Queue.Requeue(ctx, id); err != nil {
		return fmt.Errorf("queueing the ingestion of %s: %w", id, err)
	}
	return nil
}

// Retry queues a failed document again.
func (s *Service) Retry(ctx context.Context, id string) (*knowledge.Document, error) {
	d, err := s.opts.Documents.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !s.has(d.KnowledgeID) {
		return nil, fmt.Errorf("knowledge base %q is not configured any more: add it back to the YAML to ingest its documents, or delete the document: %w", d.KnowledgeID, knowledge.ErrNotFound)
	}
	if d.Status == knowledge.StatusProcessing {
		return d, nil
	}
	d.Status, d.Message, d.Progress, d.UpdatedAt = knowledge.StatusProcessing, "", 0, s.opts.Now().UTC()
	if err := s.opts.Documents.Update(ctx, d); err != nil {
		return nil, err
	}
	if err := s.requeue(ctx, d.ID); err != nil {
		return nil, err
	}
	return d, nil
}

// Patch updates a document's name, description and metadata; a metadata
// change re-indexes the document so filters see it.
func (s *Service) Patch(ctx context.Context, id string, name, description *string, metadata map[string]any) (*knowledge.Document, error) {
	d, err := s.opts.Documents.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if name != nil {
		d.Name = *name
	}
	if description != nil {
		d.Description = *description
	}
	reindex := metadata != nil
	if reindex {
		d.Metadata = metadata
		d.Status, d.Progress = knowledge.StatusProcessing, 0
	}
	d.UpdatedAt = s.opts.Now().UTC()
	if err := s.opts.Documents.Update(ctx, d); err != nil {
		return nil, err
	}
	if reindex {
		if err := s.requeue(ctx, d.ID); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Delete removes a document and its vectors. Deleting a document that is being
// ingested stops its ingestion first.
func (s *Service) Delete(ctx context.Context, id string) error {
	d, err := s.opts.Documents.Get(ctx, id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if cancel, ok := s.running[id]; ok {
		cancel(errDeleted)
	}
	s.mu.Unlock()
	// Without its base configured any more, the document's vectors can
	// only be in the embedded store.
	var store knowledge.VectorStore = s.embedded
	b, err := s.acquire(d.KnowledgeID)
	if err == nil {
		defer b.release(s.log)
		store = b.store
		// The keyword statistics go first: should the deletion then fail,
		// the document is only under-counted until it is ingested again,
		// never counted after it is gone.
		if b.external {
			if err := s.countShare(ctx, b, id, nil); err != nil {
				return fmt.Errorf("removing the keyword statistics of %s: %w", id, err)
			}
		}
	}
	if err := s.opts.Documents.Delete(ctx, id); err != nil {
		return err
	}
	if err := store.DeleteDocument(ctx, d.KnowledgeID, id); err != nil {
		return fmt.Errorf("deleting vectors of %s: %w", id, err)
	}
	return nil
}

// Get returns one document; one whose knowledge base is no longer
// configured is shown orphaned.
func (s *Service) Get(ctx context.Context, id string) (*knowledge.Document, error) {
	d, err := s.opts.Documents.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	s.markOrphanLocked(d)
	s.mu.RUnlock()
	return d, nil
}

// Counts counts every knowledge base's documents by status (bases no
// longer configured included), in one pass over the documents.
func (s *Service) Counts(ctx context.Context) (map[string]map[string]int, error) {
	return s.opts.Documents.Counts(ctx)
}

// List lists documents; those whose knowledge base is no longer configured
// are shown orphaned.
func (s *Service) List(ctx context.Context, q knowledge.DocumentQuery) ([]knowledge.Document, int, error) {
	docs, total, err := s.opts.Documents.List(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	s.mu.RLock()
	for i := range docs {
		s.markOrphanLocked(&docs[i])
	}
	s.mu.RUnlock()
	return docs, total, nil
}

// markOrphanLocked shows a document of a knowledge base that left the
// configuration as orphaned: it cannot be searched, and its ingestion (if
// unfinished) waits. The stored status is kept, so the base coming back
// resumes or serves it as before. s.mu must be held.
func (s *Service) markOrphanLocked(d *knowledge.Document) {
	if s.bases[d.KnowledgeID] != nil {
		return
	}
	d.Status = knowledge.StatusOrphaned
	d.Message = fmt.Sprintf("knowledge base %q is not configured any more: add it back to the YAML to use this document again, or delete it", d.KnowledgeID)
}

// Run syncs the knowledge bases' YAML sources whenever Configure asks, until
// ctx ends. At start, and after each sync, it queues every processing
// document of a configured base that may have no job: one left by a crash
// between storing it and queueing it, or one whose base left the
// configuration and came back. Queueing is idempotent, so this is safe on
// every replica.
func (s *Service) Run(ctx context.Context) error {
	if n := s.resume(ctx); n > 0 {
		s.log.Info("resuming unfinished ingestion", "documents", n)
	}
	// The watch of the source folders is owned here: changed with the
	// configuration, stopped when Run returns.
	var w *watcher
	defer func() { w.stop() }()
	rescan := time.NewTicker(RescanInterval)
	defer rescan.Stop()
	refresh := time.NewTicker(refreshTick)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.sync:
			w = s.rewatch(ctx, w)
			s.syncSources(ctx)
			s.resume(ctx)
		case <-w.changes():
			s.syncSources(ctx)
		case <-rescan.C:
			s.syncSources(ctx)
			s.resume(ctx)
		case <-refresh.C:
			s.refreshURLs(ctx)
		}
	}
}

// resume queues the processing documents of configured bases and returns
// how many it queued or found queued. Documents of a knowledge base no
// longer configured wait, still processing, until it comes back.
func (s *Service) resume(ctx context.Context) int {
	pending, err := s.opts.Documents.Pending(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("listing unfinished documents", "err", err)
		}
		return 0
	}
	// A base added back to the configuration may have had its documents'
	// jobs run while it was gone, ending at once (errUnconfigured); such a
	// job may still be recorded as running, which would make a new one a
	// duplicate and leave its document waiting: requeue waits for it.
	s.mu.Lock()
	returned := s.returned
	s.returned = nil
	s.mu.Unlock()
	n := 0
	for _, d := range pending {
		if !s.has(d.KnowledgeID) {
			continue
		}
		queue := s.enqueue
		if returned[d.KnowledgeID] {
			queue = s.requeue
		}
		if err := queue(ctx, d.ID); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("queueing unfinished document", "document", d.ID, "err", err)
			}
			continue
		}
		n++
	}
	return n
}

// Ingest ingests one document, recording on it success or the reason it
// failed; it is the ingestion job's work. It returns an error only when the
// ingestion was cut short by ctx (a shutdown): the document stays
// processing and the job engine retries it. A document deleted, finished or
// no longer processing is left alone.
func (s *Service) Ingest(parent context.Context, id string) error {
	_, err := s.ingestDocument(parent, id, nil)
	if errors.Is(err, errBusy) {
		// The ingestion under way finishes the document: nothing to do.
		return nil
	}
	return err
}

// errBusy is ingestDocument's answer for a document already being ingested
// in this process. Ingest leaves it to that ingestion; Put cannot (it must
// return only once the document is indexed), so it reports it for its
// caller to try again later.
var errBusy = errors.New("the document is already being ingested; try again when that ingestion ends")

// Busy reports whether err says the document is already being ingested in
// this process: a Put to try again shortly, not a failure of the message.
func Busy(err error) bool { return errors.Is(err, errBusy) }

// ingesting reports whether id is being ingested in this process.
func (s *Service) ingesting(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.running[id]
	return ok
}

// fresh is a document just created with its content in hand (a keyed put):
// it has no chunks to clear, and is small enough not to need progress
// reports before its result.
type fresh struct {
	doc     *knowledge.Document
	content []byte
}

// ingestDocument is Ingest; it also returns the document as recorded after
// the ingestion (nil when it left the document alone), and errBusy when
// the document is already being ingested in this process. f, when set, is the
// document just created, saving its reads.
func (s *Service) ingestDocument(parent context.Context, id string, f *fresh) (*knowledge.Document, error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	s.mu.Lock()
	if _, busy := s.running[id]; busy {
		// Already being ingested here: without a job queue, resume (at a
		// reload) can reach a document its upload is still ingesting. A
		// second ingestion would clear the first one's chunks and write
		// them again, so searches meanwhile missed some, and with other
		// keyword weights (they depend on the base's average length when
		// written).
		s.mu.Unlock()
		return nil, errBusy
	}
	s.running[id] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, id)
		s.mu.Unlock()
	}()

	var d *knowledge.Document
	var err error
	if f != nil {
		d = f.doc
	} else {
		d, err = s.opts.Documents.Get(ctx, id)
	}
	switch {
	case errors.Is(err, knowledge.ErrNotFound):
		return nil, nil // deleted
	case err != nil:
		return nil, fmt.Errorf("loading document %s: %w", id, err)
	case d.Status != knowledge.StatusProcessing:
		return nil, nil // already done
	}
	d.Attempts++
	start := s.opts.Now()
	err = s.ingest(ctx, d, f)
	switch {
	case errors.Is(context.Cause(ctx), errDeleted):
		// Deleted while ingesting: remove what was written meanwhile.
		if b, berr := s.acquire(d.KnowledgeID); berr == nil {
			_ = b.store.DeleteDocument(context.WithoutCancel(ctx), d.KnowledgeID, d.ID)
			b.release(s.log)
		}
		return nil, nil
	case parent.Err() != nil:
		// Shutting down: the document stays processing and resumes.
		return nil, fmt.Errorf("ingesting %s: %w", id, context.Cause(parent))
	case errors.Is(err, errUnconfigured):
		// Its knowledge base left the configuration before the ingestion
		// began: failing the document would lose it for good should the
		// base come back, so it stays processing (shown as orphaned) and
		// Run queues it again when the base is back.
		return d, nil
	case err != nil:
		d.Status, d.Message = knowledge.StatusFailed, err.Error()
		s.log.Warn("ingestion failed", "document", d.Name, "knowledge", d.KnowledgeID, "err", err)
	default:
		d.Status, d.Message, d.Progress = knowledge.StatusCompleted, "", 1
		s.log.Info("ingested", "document", d.Name, "knowledge", d.KnowledgeID, "chunks", d.Chunks, "duration", s.opts.Now().Sub(start))
	}
	d.UpdatedAt = s.opts.Now().UTC()
	if err := s.opts.Documents.Update(context.WithoutCancel(ctx), d); err != nil {
		return nil, fmt.Errorf("recording the ingestion result of %s: %w", id, err)
	}
	return d, nil
}

// batchSize is how many chunks are embedded and written together: large enough
// to amortize embedding requests, small enough for steady progress updates.
const batchSize = 64

func (s *Service) ingest(ctx context.Context, d *knowledge.Document, f *fresh) error {
	b, err := s.acquire(d.KnowledgeID)
	if err != nil {
		return errUnconfigured
	}
	defer b.release(s.log)
	var content []byte
	if f != nil {
		content = f.content
	} else if content, err = s.opts.Documents.Content(ctx, d.ID); err != nil {
		return fmt.Errorf("reading stored content: %w", err)
	}
	sections, err := reader.Read(d.Type, d.Name, content)
	if err != nil {
		return fmt.Errorf("reading %s as %s: %w", d.Name, d.Type, err)
	}
	opts := chunk.Options{Strategy: b.spec.Chunking.Strategy, Size: b.spec.Chunking.Size, Overlap: b.spec.Chunking.Overlap, MaxPieces: s.opts.MaxChunks}
	if d.ChunkStrategy != "" {
		opts.Strategy = d.ChunkStrategy
	}
	if d.ChunkSize > 0 {
		opts.Size, opts.Overlap = d.ChunkSize, min(d.ChunkOverlap, d.ChunkSize-1)
	}
	pieces, err := chunk.Split(sections, opts)
	if err != nil {
		return fmt.Errorf("chunking: %w", err)
	}
	// Start from a clean slate: a resumed or re-indexed document may have
	// left chunks a new chunking would not overwrite.
	if f == nil {
		if err := b.store.DeleteDocument(ctx, d.KnowledgeID, d.ID); err != nil {
			return fmt.Errorf("clearing previous chunks: %w", err)
		}
	}
	avgdl := s.avgDL(b)
	// An external base counts this ingestion's chunks apart, and swaps
	// them for the document's previous share once every chunk is written.
	var share bm25.Stats
	for start := 0; start < len(pieces); start += batchSize {
		batch := pieces[start:min(start+batchSize, len(pieces))]
		texts := make([]string, len(batch))
		chunks := make([]knowledge.Chunk, len(batch))
		sparse := make([]map[uint32]float32, len(batch))
		for i, p := range batch {
			// Index the heading path with the text: a chunk under
			// "Webhooks > Verifying signatures" is about webhooks even if
			// its own words never say so. The stored text stays as written.
			texts[i] = p.Text
			if p.Heading != "" {
				texts[i] = p.Heading + "\n" + p.Text
			}
			idx := start + i
			chunks[i] = knowledge.Chunk{ID: knowledge.ChunkID(d.ID, idx), KnowledgeID: d.KnowledgeID, DocumentID: d.ID, Document: d.Name,
				Index: idx, Text: p.Text, Page: p.Page, Heading: p.Heading, Metadata: d.Metadata}
			w, dl := bm25.Doc(texts[i], avgdl)
			sparse[i] = w
			if b.external {
				share.Add(w, dl)
			}
		}
		dense, err := b.embedder.Embed(ctx, texts)
		if err != nil {
			return fmt.Errorf("embedding with %s: %w", b.embedder.Name(), err)
		}
		if err := b.store.Upsert(ctx, d.KnowledgeID, chunks, dense, sparse); err != nil {
			return fmt.Errorf("writing chunks: %w", err)
		}
		d.Chunks = start + len(batch)
		d.Progress = float64(d.Chunks) / float64(len(pieces))
		if f != nil && d.Chunks == len(pieces) {
			break // the result, recorded next, says as much
		}
		d.UpdatedAt = s.opts.Now().UTC()
		if err := s.opts.Documents.Update(ctx, d); err != nil {
			return fmt.Errorf("recording progress: %w", err)
		}
	}
	if b.external {
		if err := s.countShare(ctx, b, d.ID, &share); err != nil {
			return fmt.Errorf("saving keyword statistics: %w", err)
		}
	}
	d.Chunks = len(pieces)
	return nil
}

// countShare makes share a document's part of an external base's keyword
// statistics, in place of what it counted before (nil share: nothing, the
// document is leaving). The statistics in memory change only once saved.
//
// An ingestion that a deletion cancelled counts nothing: Delete cancels it
// before it takes the document's share out, under the same lock.
func (s *Service) countShare(ctx context.Context, b *base, documentID string, share *bm25.Stats) error {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	if share != nil && errors.Is(context.Cause(ctx), errDeleted) {
		return context.Cause(ctx)
	}
	next, err := s.opts.Stats.ReplaceDocumentStats(ctx, b.spec.Name, documentID, share)
	if err != nil {
		return err
	}
	b.stats = next
	b.statsGen++
	return nil
}

func (s *Service) avgDL(b *base) float64 {
	if b.external {
		b.statsMu.Lock()
		defer b.statsMu.Unlock()
		return b.stats.AvgDL()
	}
	return s.embedded.AvgDL(b.spec.Name)
}

// Search searches knowledge bases. mode "" uses each base's configured mode,
// topK 0 its configured top_k; each base's search.min_score applies.
func (s *Service) Search(ctx context.Context, knowledgeIDs []string, query, mode string, topK int, filters knowledge.Filters) ([]knowledge.Hit, error) {
	return s.SearchWith(ctx, SearchRequest{KnowledgeIDs: knowledgeIDs, Query: query, Mode: mode, TopK: topK, Filters: filters})
}

// SearchWith searches knowledge bases as r says: each base's best hits
// (reranked when the base has rerank:), those scoring below the minimum
// dropped, then the best of all bases by score.
func (s *Service) SearchWith(ctx context.Context, r SearchRequest) ([]knowledge.Hit, error) {
	knowledgeIDs, query, mode, topK, filters := r.KnowledgeIDs, r.Query, r.Mode, r.TopK, r.Filters
	if strings.TrimSpace(query) == "" {
		return nil, fmt.Errorf("%w: the query is empty", ErrInvalidSearch)
	}
	if err := filters.Validate(); err != nil {
		return nil, err
	}
	if m := r.MinScore; m != nil && !(*m >= 0 && *m <= 1) {
		return nil, fmt.Errorf("%w: min_score %g is out of range: it must be from 0 to 1 (scores are cosine similarity for vector, the share of the query's weighted terms found for keyword, their mean for hybrid)", ErrInvalidSearch, *m)
	}
	if len(knowledgeIDs) == 0 {
		// No base configured (SearchIDs of a server without knowledge):
		// nothing to search, so nothing found.
		return nil, nil
	}
	var lists [][]knowledge.Hit
	want := topK
	// Bases sharing an embedder share the query's embedding: one request,
	// not one per base.
	vectors := map[string][]float32{}
	for _, id := range knowledgeIDs {
		b, err := s.acquire(id)
		if err != nil {
			return nil, err
		}
		hits, k, err := s.searchBase(ctx, b, query, mode, topK, filters, vectors, r.MinScore)
		b.release(s.log)
		if err != nil {
			return nil, err
		}
		want = max(want, k)
		lists = append(lists, hits)
	}
	hits := lists[0]
	if len(lists) > 1 {
		// Scores are readable, so comparable across bases: the best of all.
		hits = knowledge.Merge(want, lists...)
	}
	return s.currentNames(ctx, hits), nil
}

// currentNames gives hits their documents' current names. Chunks carry the
// name the document had when it was indexed, and renaming a document does
// not reindex it (that would re-embed every chunk, and Milvus keeps the name
// in its rows), so search hits and run references would show the old name.
// One lookup per distinct document is bounded by top_k; a document deleted
// meanwhile keeps the name its chunk has.
func (s *Service) currentNames(ctx context.Context, hits []knowledge.Hit) []knowledge.Hit {
	names := map[string]string{}
	for i := range hits {
		id := hits[i].DocumentID
		if id == "" {
			continue
		}
		name, ok := names[id]
		if !ok {
			name = hits[i].Document
			if d, err := s.opts.Documents.Get(ctx, id); err == nil {
				name = d.Name
			}
			names[id] = name
		}
		hits[i].Document = name
	}
	return hits
}

// searchBase searches one acquired base and returns its hits and the top_k
// it used. vectors holds the query's embedding by embedder (its spec.Embedder
// Key: model, endpoint and dimensions, since two endpoints may serve models
// of one name), shared across the bases of one search.
func (s *Service) searchBase(ctx context.Context, b *base, query, mode string, topK int, filters knowledge.Filters, vectors map[string][]float32, minScore *float64) ([]knowledge.Hit, int, error) {
	q := knowledge.Query{Text: query, Mode: mode, TopK: topK, Filters: filters}
	if q.Mode == "" {
		q.Mode = b.spec.Search.Mode
	}
	if q.TopK <= 0 {
		q.TopK = b.spec.Search.TopK
	}
	k := q.TopK
	if rr := b.spec.Rerank; rr != nil {
		q.TopK = max(k, rr.Candidates)
	}
	if q.Mode != knowledge.ModeKeyword {
		q.Vector = vectors[b.spec.Embedder.Key()]
		if q.Vector == nil {
			v, err := b.embedder.Embed(ctx, []string{query})
			if err != nil {
				return nil, 0, fmt.Errorf("embedding the query: %w", err)
			}
			q.Vector = v[0]
			vectors[b.spec.Embedder.Key()] = q.Vector
		}
	}
	// The embedded store weighs the query's terms in place, under its
	// own lock (a snapshot of its statistics would make its next write copy
	// them all); the weights also give the IDF mass that makes keyword
	// scores readable.
	if q.Mode != knowledge.ModeVector {
		if b.external {
			b.statsMu.Lock()
			q.Sparse = b.stats.Query(query)
			b.statsMu.Unlock()
		} else {
			q.Sparse = s.embedded.QueryWeights(b.spec.Name, query)
		}
	}
	hits, err := s.storeSearch(ctx, b, q)
	if err != nil {
		return nil, 0, fmt.Errorf("searching %s: %w", b.spec.Name, err)
	}
	if b.spec.Rerank != nil {
		hits = s.rerank(ctx, b.spec, query, hits)
	}
	if len(hits) > k {
		hits = hits[:k]
	}
	if minScore == nil {
		minScore = b.spec.Search.MinScore
	}
	return cutBelow(hits, minScore), k, nil
}

// storeSearch runs q on b's store and returns hits with readable scores:
// stores score hybrid searches themselves (they hold both sides of every
// candidate); vector and keyword scores are mapped here
// (knowledge.ScoreHits).
func (s *Service) storeSearch(ctx context.Context, b *base, q knowledge.Query) ([]knowledge.Hit, error) {
	hits, err := b.store.Search(ctx, b.spec.Name, q)
	if q.Mode != knowledge.ModeHybrid {
		knowledge.ScoreHits(q.Mode, hits, knowledge.IDFMass(q.Sparse))
	}
	return hits, err
}

// syncSources ingests new and changed source files of every knowledge base and
// removes the documents of sources that disappeared. Unchanged files are
// skipped by content hash.
func (s *Service) syncSources(ctx context.Context) {
	s.reembedBases(ctx)
	for _, k := range s.Bases() {
		if _, err := s.syncBase(ctx, k, scopeAll); err != nil && ctx.Err() == nil {
			s.log.Warn("syncing knowledge sources", "knowledge", k.Name, "err", err)
		}
	}
}

// syncBase syncs what sc says of one base's sources and counts what changed.
func (s *Service) syncBase(ctx context.Context, k *spec.Knowledge, sc scope) (SyncResult, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	var res SyncResult
	existing, err := s.opts.Documents.Sources(ctx, k.Name)
	if err != nil {
		return res, err
	}
	files := sc != scopeDueURLs
	seen := map[string]bool{}
	var changed []changedFile
	deleted := map[string]bool{}
	dir := filepath.Dir(k.Pos().File)
	roots := k.ReadRoots()
	stamps, fresh := s.stamps[k.Name], map[string]fileStamp{}
	for _, src := range k.Sources {
		if spec.IsURLSource(src) {
			// Fetched once, then again every refresh interval (or on a
			// forced sync) with the validators of the last answer.
			seen["url:"+src] = true
			s.syncURL(ctx, k, src, sc, existing, &res)
			continue
		}
		if !files {
			continue
		}
		pattern := src
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, src)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return res, fmt.Errorf("source %q: %w", src, err)
		}
		for _, path := range matches {
			if err := ctx.Err(); err != nil {
				return res, err // shutting down: the next start syncs again
			}
			rel, _ := filepath.Rel(dir, path)
			key := "file:" + filepath.ToSlash(rel)
			if seen[key] {
				continue
			}
			info, statErr := os.Stat(path)
			if statErr == nil && info.IsDir() {
				continue // a glob such as docs/* also matches folders
			}
			if old, ok := existing[key]; ok && sc != scopeForce && statErr == nil && stamps[key].unchanged(info, old.ID) {
				// Not read again: a watch event in a folder of thousands of
				// files costs their stats, not their bytes.
				seen[key] = true
				fresh[key] = stamps[key]
				res.Unchanged++
				continue
			}
			// Only regular files, within the size limit while reading, and
			// inside the spec folder or a read root once symlinks are
			// resolved: a link to /etc/shadow or /dev/zero, or a FIFO that
			// would block this loop, is skipped. A source that can no longer
			// be read loses its document below, like a deleted one; one
			// that failed for another reason (permissions, I/O) keeps it.
			data, err := spec.ReadFileWithin(path, s.opts.MaxBytes, roots)
			if err != nil {
				if !refused(err) {
					seen[key] = true
				}
				res.Failed++
				s.log.Warn("skipping knowledge source", "knowledge", k.Name, "path", path, "err", err)
				continue
			}
			seen[key] = true
			id := knowledge.DocumentID(k.Name, data)
			if statErr == nil {
				// Stated before the read: a change after it moves the
				// modification time past the stamp's.
				fresh[key] = fileStamp{info: info, id: id, readAt: time.Now()}
			}
			if old, ok := existing[key]; ok && old.ID == id {
				res.Unchanged++
				continue
			}
			changed = append(changed, changedFile{key: key, path: path})
		}
	}
	if files {
		// Only the files this sync saw keep a stamp.
		if s.stamps == nil {
			s.stamps = map[string]map[string]fileStamp{}
		}
		s.stamps[k.Name] = fresh
	}
	// Removed sources go first: a file renamed with its content unchanged
	// is the same document (its id is the content's hash), which must be
	// deleted under its old name before it is submitted under the new one.
	for key, d := range existing {
		if seen[key] || (!files && strings.HasPrefix(key, "file:")) {
			continue
		}
		if err := s.Delete(ctx, d.ID); err != nil && !errors.Is(err, knowledge.ErrNotFound) {
			s.log.Warn("removing deleted knowledge source", "source", key, "err", err)
			continue
		}
		deleted[d.ID] = true
		res.Deleted++
	}
	// Changed files are read again rather than held in memory since the
	// scan (each may be up to MaxBytes).
	for _, f := range changed {
		data, err := spec.ReadFileWithin(f.path, s.opts.MaxBytes, roots)
		if err != nil {
			res.Failed++
			s.log.Warn("skipping knowledge source", "knowledge", k.Name, "path", f.path, "err", err)
			continue
		}
		if s.submitSource(ctx, k, f.key, filepath.Base(f.path), data, existing, &res) && deleted[knowledge.DocumentID(k.Name, data)] {
			// The same document deleted above and created again: its
			// last job may still be recorded as running, which would make
			// the new one a duplicate and leave it waiting.
			if err := s.requeue(ctx, knowledge.DocumentID(k.Name, data)); err != nil && ctx.Err() == nil {
				s.log.Warn("queueing renamed knowledge source", "source", f.key, "err", err)
			}
		}
	}
	return res, nil
}

// changedFile is a file source whose content differs from its document's.
type changedFile struct{ key, path string }

// racyWindow is how long after a read a file's modification time must lie
// for its stamp to vouch for it: a write within the filesystem's timestamp
// granularity of the read could keep the time and the size it stamped.
const racyWindow = 2 * time.Second

// fileStamp is a file source as a sync read it: how it stated before the
// read (size, modification time, and device and inode for os.SameFile),
// when it was read, and the document id of what was read.
type fileStamp struct {
	info   os.FileInfo
	id     string
	readAt time.Time
}

// unchanged reports whether a file that stats as info still holds what the
// stamp read, and that was stored as document id: the same file, size and
// modification time, a modification time safely before the read, and the
// document still the one read. A file changed in place keeping all three (a
// copy that preserves times onto a file of the same size) is caught by a
// forced sync (POST /knowledge/{id}/sync), which reads every file.
func (st fileStamp) unchanged(info os.FileInfo, id string) bool {
	return st.info != nil && st.id == id && st.info.Size() == info.Size() && st.info.ModTime().Equal(info.ModTime()) &&
		st.info.ModTime().Before(st.readAt.Add(-racyWindow)) && os.SameFile(st.info, info)
}

// refused reports whether a source file is refused for what it is (outside
// the read roots, not a regular file, too large) or gone, rather than
// unreadable for now.
func refused(err error) bool {
	return errors.Is(err, spec.ErrOutsideRoots) || errors.Is(err, spec.ErrNotRegular) ||
		errors.Is(err, spec.ErrFileTooLarge) || errors.Is(err, fs.ErrNotExist)
}

// submitSource ingests a source unless it is unchanged, replacing the
// previous version's document when its content changed.
func (s *Service) submitSource(ctx context.Context, k *spec.Knowledge, key, name string, data []byte, existing map[string]knowledge.Document, res *SyncResult) (created bool) {
	id := knowledge.DocumentID(k.Name, data)
	old, had := existing[key]
	if had {
		if old.ID == id {
			res.Unchanged++
			return false
		}
		if err := s.Delete(ctx, old.ID); err != nil && !errors.Is(err, knowledge.ErrNotFound) {
			s.log.Warn("replacing changed knowledge source", "source", key, "err", err)
		}
	}
	_, created, err := s.Submit(ctx, Upload{KnowledgeID: k.Name, Name: name, Content: data, Source: key})
	switch {
	case err != nil:
		res.Failed++
		s.log.Warn("ingesting knowledge source", "knowledge", k.Name, "source", key, "err", err)
	case had:
		res.Updated++
	case created:
		res.Added++
	default:
		// The same content as another source of this base: one
		// document serves both.
		res.Unchanged++
	}
	return created
}

// SyncSources ingests the knowledge bases' YAML sources now, instead of
// waiting for the run loop (one-shot commands call it before Wait).
func (s *Service) SyncSources(ctx context.Context) { s.syncSources(ctx) }

// Wait blocks until no document of a configured base is processing, or ctx
// ends. The job engine must be running for queued documents to make
// progress.
func (s *Service) Wait(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		pending, err := s.opts.Documents.Pending(ctx)
		if err != nil {
			return err
		}
		s.mu.RLock()
		// Documents of a base no longer configured wait for it, not here.
		waiting := 0
		for _, d := range pending {
			if s.bases[d.KnowledgeID] != nil {
				waiting++
			}
		}
		s.mu.RUnlock()
		if waiting == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// rerankModel identifies the Model a base's reranker was resolved to: its
// content hash, "" without one.
func rerankModel(k *spec.Knowledge) string {
	if k.Rerank == nil || k.Rerank.ModelSpec() == nil {
		return ""
	}
	return k.Rerank.ModelSpec().Hash()
}
