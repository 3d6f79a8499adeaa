package jobs_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/jobs"
)

// purger records the cutoffs it was asked to purge before.
type purger struct {
	mu      sync.Mutex
	cutoffs []time.Time
}

func (p *purger) PurgeKeys(_ context.Context, cutoff time.Time) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutoffs = append(p.cutoffs, cutoff)
	return 0, nil
}

func (p *purger) calls() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.cutoffs...)
}

// TestKeyPurgeIsPeriodic: the purge runs as the client starts and then
// every interval, with the cutoff of the moment it runs.
func TestKeyPurgeIsPeriodic(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "jobs.db"))
	reg := jobs.NewRegistry()
	c, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg})
	require.NoError(t, err)
	// Registered after the client is built, before it runs, as serve does.
	p := &purger{}
	const ttl = time.Hour
	jobs.RegisterKeyPurge(reg, p, func(now time.Time) time.Time { return now.Add(-ttl) }, 300*time.Millisecond)
	start := time.Now()
	stop := run(c)
	require.Eventually(t, func() bool { return len(p.calls()) >= 3 }, 15*time.Second, 20*time.Millisecond)
	require.NoError(t, stop())
	for _, cutoff := range p.calls() {
		require.WithinDuration(t, start.Add(-ttl), cutoff, 15*time.Second)
	}
}
