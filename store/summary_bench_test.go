package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/summary"
	"github.com/troupehq/troupe/store"
)

// BenchmarkSummaryAfterRun measures what summaries add to a run's
// foreground path once it has answered: the estimate of the unfolded runs
// read at the start (ten, with the turn's own) and, on a threshold
// crossing, the insert of the summary job (unique per session and fold
// point). "below" is a turn under the threshold (no insert).
func BenchmarkSummaryAfterRun(b *testing.B) {
	runs := make([]session.HistoryRun, 10)
	for i := range runs {
		runs[i] = session.HistoryRun{FoldPoint: session.FoldPoint{RunID: fmt.Sprint("r", i), CreatedAt: time.Now()},
			Messages: []model.Message{{Role: model.RoleUser, Content: "What is the capital of France?"}, {Role: model.RoleAssistant, Content: "Paris is the capital of France."}}}
	}
	b.Run("below", func(b *testing.B) {
		cfg := &session.SummaryConfig{Threshold: 8000, Keep: 3}
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := session.FoldThrough(runs, cfg); ok {
				b.Fatal("crossed")
			}
		}
	})
	benchStores(b, func(b *testing.B, db *store.DB) {
		reg := jobs.NewRegistry()
		summary.Register(reg, &summary.Worker{Store: db})
		client, err := db.OpenJobs(b.Context(), jobs.Options{Registry: reg})
		if err != nil {
			b.Fatal(err)
		}
		q := summary.Queue{Client: client}
		cfg := &session.SummaryConfig{Threshold: 100, Keep: 3}
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			through, ok := session.FoldThrough(runs, cfg)
			if !ok {
				b.Fatal("no crossing")
			}
			// A new session each time: every insert is a new job.
			if err := q.EnqueueSummary(b.Context(), fmt.Sprint("s", i), through); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
