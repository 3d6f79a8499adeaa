package jobs_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/jobs"
)

// BenchmarkStats measures the scrape-time stats query over a table of
// 5,000 jobs (no client works them), on each database.
func BenchmarkStats(b *testing.B) {
	for name, open := range databases(b) {
		b.Run(name, func(b *testing.B) {
			db := open(b)
			reg := jobs.NewRegistry()
			jobs.Register(reg, task, func(context.Context, taskArgs) error { return nil })
			c, err := db.OpenJobs(b.Context(), jobs.Options{Registry: reg})
			require.NoError(b, err)
			for i := range 5000 {
				_, err := jobs.Enqueue(b.Context(), c, task, taskArgs{Name: strconv.Itoa(i)})
				require.NoError(b, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Stats(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
