package store_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/workflow"
	"github.com/troupehq/troupe/store"
)

// BenchmarkSaveStep measures a workflow step's checkpoints: the RUNNING
// record before it executes and the COMPLETED one with its output after,
// each committed, as the runner writes them for every step.
func BenchmarkSaveStep(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		ctx := b.Context()
		s := &store.Session{ID: "ws", Type: store.SessionWorkflow, ComponentID: "bench", UserID: "u"}
		if err := db.StartRun(ctx, s, &store.Run{ID: "wr", Input: "go"}); err != nil {
			b.Fatal(err)
		}
		out := json.RawMessage(`"Paris is the capital of France, and the answer of a typical step."`)
		i := 0
		for b.Loop() {
			c := workflow.Checkpoint{RunID: "wr", Path: fmt.Sprint("step", i), Status: event.StatusRunning, Attempts: 1, StartedAt: time.Now(), UpdatedAt: time.Now()}
			i++
			if err := db.SaveStep(ctx, c); err != nil {
				b.Fatal(err)
			}
			c.Status, c.Input, c.Output, c.UpdatedAt = event.StatusCompleted, "What is the capital of France?", out, time.Now()
			if err := db.SaveStep(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/step")
	})
}
