package store_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// slowEmbedder makes ingestion take long enough to be interrupted.
type slowEmbedder struct {
	knowledge.Embedder
	delay time.Duration
	calls atomic.Int64
}

func (s *slowEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	s.calls.Add(1)
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Embedder.Embed(ctx, texts)
}

func knowledgeSpecs(t *testing.T, dir string) []*spec.Knowledge {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kb.yaml"), []byte("kind: Knowledge\nname: docs\nchunking: {strategy: markdown, size: 40, overlap: 5}\n"), 0o644))
	set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
	require.NoError(t, err)
	return []*spec.Knowledge{set.Knowledge("docs")}
}

// ingestCounter counts, per document, the ingestions that took it from
// processing to completed, across every service it watches.
type ingestCounter struct {
	mu    sync.Mutex
	count map[string]int
}

func (c *ingestCounter) completed(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[id]
}

func (c *ingestCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.count {
		n += v
	}
	return n
}

// countingIngester is a service's ingestion as the job engine calls it,
// counted.
type countingIngester struct {
	s *kb.Service
	c *ingestCounter
}

func (i countingIngester) Ingest(ctx context.Context, id string) error {
	before, err := i.s.Get(ctx, id)
	err2 := i.s.Ingest(ctx, id)
	after, err3 := i.s.Get(context.WithoutCancel(ctx), id)
	if err == nil && err3 == nil && before.Status == knowledge.StatusProcessing && after.Status == knowledge.StatusCompleted {
		i.c.mu.Lock()
		if i.c.count == nil {
			i.c.count = map[string]int{}
		}
		i.c.count[id]++
		i.c.mu.Unlock()
	}
	return err2
}

var _ jobs.Ingester = countingIngester{}

// startKnowledge runs a knowledge service on db with its job engine, as
// troupe serve does, counting ingestions in c, until the returned stop.
func startKnowledge(t *testing.T, db *store.DB, ks []*spec.Knowledge, e knowledge.Embedder, c *ingestCounter) (*kb.Service, func()) {
	t.Helper()
	reg := jobs.NewRegistry()
	// A short stop timeout: stopping is the tests' crash, mid-ingestion.
	client, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg, StopTimeout: 20 * time.Millisecond})
	require.NoError(t, err)
	s, err := kb.New(t.Context(), kb.Options{Documents: db.Knowledge(), Chunks: db.Knowledge(), Stats: db.Knowledge(),
		Queue: jobs.IngestQueue{Client: client}, NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) { return e, nil }})
	require.NoError(t, err)
	s.Configure(t.Context(), ks)
	jobs.RegisterIngestion(reg, countingIngester{s: s, c: c})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = client.Run(ctx) })
	wg.Go(func() { _ = s.Run(ctx) })
	var once sync.Once
	return s, func() { once.Do(func() { cancel(); wg.Wait() }) }
}
