package jobs_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/jobs"
)

// TestDeferredJobsAreInsertedAtShutdown checks that the jobs a run leaves
// behind (EnqueueDeferred) and that still wait when the client stops are
// written before Run returns, and the next client works them. The flusher
// is held (jobs.HoldDeferred), so the insert at shutdown is their only way
// into the database: without it they are lost.
func TestDeferredJobsAreInsertedAtShutdown(t *testing.T) {
	t.Parallel()
	for name, open := range databases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := open(t)
			reg := jobs.NewRegistry()
			rec := &recorder{}
			// The options of the after-run kinds (summary, memory
			// extraction, learning).
			kind := jobs.Kind[echoArgs]{UniqueDone: true, MaxAttempts: 5, Timeout: 5 * time.Minute}
			jobs.Register(reg, kind, rec.work)
			c, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg})
			require.NoError(t, err)
			jobs.HoldDeferred(c)
			stop := run(c)

			require.Eventually(t, func() bool { return jobs.Deferring(c) }, 10*time.Second, 5*time.Millisecond)
			const n = 3
			for i := range n {
				require.NoError(t, jobs.EnqueueDeferred(t.Context(), c, kind, echoArgs{Text: fmt.Sprintf("summary %d", i)}))
			}
			require.Equal(t, n, c.Deferred(), "the three wait")
			page, err := c.Jobs(t.Context(), jobs.Query{Kind: echoArgs{}.Kind()})
			require.NoError(t, err)
			require.Empty(t, page.Jobs, "nothing deferred is inserted before the shutdown")

			require.NoError(t, stop())
			require.Zero(t, c.Deferred())
			page, err = c.Jobs(t.Context(), jobs.Query{Kind: echoArgs{}.Kind(), States: []string{jobs.StateAvailable}})
			require.NoError(t, err)
			require.Len(t, page.Jobs, n, "the shutdown inserted every waiting job")

			// The next client works them.
			c2, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg})
			require.NoError(t, err)
			stop2 := run(c2)
			require.Eventually(t, func() bool { return len(rec.texts()) >= n }, 10*time.Second, 5*time.Millisecond)
			require.NoError(t, stop2())
			require.ElementsMatch(t, rec.texts(), []string{"summary 0", "summary 1", "summary 2"})
		})
	}
}
