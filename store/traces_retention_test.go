package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// TestTracesRetention: traces whose root started before the retention
// window are deleted, in batches, by a call or by the periodic Retain, and
// newer ones are kept.
func TestTracesRetention(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			tr := db.Traces()
			ctx := t.Context()
			now := time.Now()
			write := func(i int, age time.Duration) string {
				id := fmt.Sprintf("%032x", i)
				require.NoError(t, tr.Write(ctx, teamTrace(id, "", now.Add(-age))))
				return id
			}
			var kept []string
			for i := range 7 {
				write(i, time.Duration(8+i)*24*time.Hour)
			}
			kept = append(kept, write(100, 6*24*time.Hour), write(101, time.Hour))

			n, err := tr.DeleteTracesBefore(ctx, now.Add(-7*24*time.Hour), 2)
			require.NoError(t, err)
			require.Equal(t, 7, n, "in four batches of at most two")
			list, total, err := tr.ListTraces(ctx, telemetry.TraceQuery{})
			require.NoError(t, err)
			require.Equal(t, 2, total)
			require.ElementsMatch(t, kept, traceIDs(list))
			n, err = tr.DeleteTracesBefore(ctx, now.Add(-7*24*time.Hour), 2)
			require.NoError(t, err)
			require.Zero(t, n)

			// Retain keeps deleting what expires while it runs, and stops
			// with its context.
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- tr.Retain(rctx, store.TraceRetention{TTL: 7 * 24 * time.Hour, Interval: 20 * time.Millisecond, Batch: 2})
			}()
			late := write(200, 30*24*time.Hour)
			require.Eventually(t, func() bool {
				spans, err := tr.GetTrace(ctx, late)
				require.NoError(t, err)
				return len(spans) == 0
			}, 5*time.Second, 10*time.Millisecond)
			stop()
			require.NoError(t, <-done)
			_, total, err = tr.ListTraces(ctx, telemetry.TraceQuery{})
			require.NoError(t, err)
			require.Equal(t, 2, total)

			// A zero TTL keeps traces forever.
			require.NoError(t, tr.Retain(ctx, store.TraceRetention{}))
		})
	}
}
