package kb_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/store"
)

// jobEngine is the real job engine (River on a SQLite file, through the
// store's driver) that queues and runs a service's ingestions in tests.
type jobEngine struct {
	db     *store.DB
	reg    *jobs.Registry
	client *jobs.Client
}

// newJobEngine opens the job engine on the SQLite file path (a new one in
// t.TempDir when empty); reopening a path is a restart.
func newJobEngine(t testing.TB, path string) *jobEngine {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "jobs.db")
	}
	db, err := store.Open(context.Background(), path, store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	reg := jobs.NewRegistry()
	// A short stop timeout: a test's "crash" cancels ingestions that a
	// paused embedder holds.
	c, err := db.OpenJobs(context.Background(), jobs.Options{Registry: reg, StopTimeout: 50 * time.Millisecond})
	require.NoError(t, err)
	return &jobEngine{db: db, reg: reg, client: c}
}

// queue is the service's Queue.
func (j *jobEngine) queue() kb.Queue { return jobs.IngestQueue{Client: j.client} }

// run makes s the ingester and runs the job client and s.Run until stop,
// which waits for both. The database stays open until the test ends, so
// jobs can still be queued after stop, as on a stopped server.
func (j *jobEngine) run(s *kb.Service) (stop func()) {
	jobs.RegisterIngestion(j.reg, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = j.client.Run(ctx); done <- struct{}{} }()
	go func() { _ = s.Run(ctx); done <- struct{}{} }()
	return func() { cancel(); <-done; <-done }
}
