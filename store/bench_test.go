package store_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/store"
)

// benchStores runs fn against SQLite (a file in a temporary directory) and,
// when TROUPE_TEST_POSTGRES_DSN is set, PostgreSQL (a fresh schema).
func benchStores(b *testing.B, fn func(b *testing.B, db *store.DB)) {
	b.Run("sqlite", func(b *testing.B) {
		fn(b, openSQLite(b, filepath.Join(b.TempDir(), "troupe.db")))
	})
	b.Run("postgres", func(b *testing.B) {
		fn(b, openPostgres(b, newSchema(b, postgresDSN(b)), store.Options{}))
	})
}

// finishedRun gives r a typical small result: a question, an answer, metrics.
func finishedRun(r *store.Run) {
	r.Status = store.RunCompleted
	r.Content = "Paris is the capital of France."
	r.Messages = []model.Message{
		{Role: model.RoleUser, Content: r.Input},
		{Role: model.RoleAssistant, Content: r.Content},
	}
	r.Metrics = event.Metrics{InputTokens: 12, OutputTokens: 8, TotalTokens: 20, ModelRequests: 1}
}

// BenchmarkStartFinishRun measures the store's share of every run: StartRun
// creating a new session, then FinishRun, one after the other.
func BenchmarkStartFinishRun(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		ctx := b.Context()
		i := 0
		for b.Loop() {
			id := fmt.Sprint(i)
			i++
			s := &store.Session{ID: "s" + id, Type: store.SessionAgent, ComponentID: "bench", UserID: "u"}
			r := &store.Run{ID: "r" + id, Input: "What is the capital of France?", Model: "gpt-x", Provider: "openai"}
			if err := db.StartRun(ctx, s, r); err != nil {
				b.Fatal(err)
			}
			finishedRun(r)
			if err := db.FinishRun(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
	})
}

// BenchmarkStartFinishRunExistingSession is a follow-up turn: the session
// exists, and the run reads the session's history like an agent with history
// enabled does.
func BenchmarkStartFinishRunExistingSession(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		ctx := b.Context()
		const sessions = 100
		i := 0
		for b.Loop() {
			id := fmt.Sprint(i)
			s := &store.Session{ID: fmt.Sprint("s", i%sessions), Type: store.SessionAgent, ComponentID: "bench", UserID: "u"}
			i++
			r := &store.Run{ID: "r" + id, Input: "And of Germany?"}
			if err := db.StartRun(ctx, s, r); err != nil {
				b.Fatal(err)
			}
			if _, err := db.History(ctx, s.ID, 5); err != nil {
				b.Fatal(err)
			}
			finishedRun(r)
			if err := db.FinishRun(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
	})
}

// BenchmarkStartFinishRunParallel is many requests at once, each a new
// session: the server's throughput ceiling as far as the store is concerned.
func BenchmarkStartFinishRunParallel(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		ctx := b.Context()
		var next atomic.Int64
		b.SetParallelism(8) // goroutines per GOMAXPROCS, like concurrent HTTP requests
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := fmt.Sprint(next.Add(1))
				s := &store.Session{ID: "s" + id, Type: store.SessionAgent, ComponentID: "bench", UserID: "u"}
				r := &store.Run{ID: "r" + id, Input: "What is the capital of France?"}
				if err := db.StartRun(ctx, s, r); err != nil {
					b.Error(err)
					return
				}
				finishedRun(r)
				if err := db.FinishRun(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
	})
}
