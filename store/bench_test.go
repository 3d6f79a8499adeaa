package store_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
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
	r.Status = event.StatusCompleted
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

// seedOverview stores runs top-level runs, one per session, created evenly
// over the hour before it returns, and returns that hour. The mix is an
// overview page's: a hundred users, one run in ten failed, one in twenty
// still running, latencies from half a second to half a minute. Runs are
// written by concurrent callers, which SQLite's group commit turns into
// large transactions.
func seedOverview(b *testing.B, db *store.DB, runs int) (from, to time.Time) {
	b.Helper()
	to = time.Now().UTC()
	from = to.Add(-time.Hour)
	step := time.Hour / time.Duration(runs)
	g, ctx := errgroup.WithContext(b.Context())
	g.SetLimit(64)
	for i := range runs {
		g.Go(func() error {
			id := fmt.Sprint(i)
			s := &store.Session{ID: "s" + id, Type: store.SessionAgent, ComponentID: "bench", UserID: fmt.Sprint("u", i%100)}
			r := &store.Run{ID: "r" + id, Input: "What is the capital of France?", CreatedAt: from.Add(time.Duration(i) * step)}
			if err := db.StartRun(ctx, s, r); err != nil {
				return err
			}
			if i%20 == 7 {
				return nil // still running
			}
			finishedRun(r)
			if i%10 == 3 {
				r.Status, r.Error = event.StatusError, "model unavailable"
			}
			r.UpdatedAt = r.CreatedAt.Add(500*time.Millisecond + time.Duration(i%60)*500*time.Millisecond)
			return db.FinishRun(ctx, r)
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	if db.Dialect() == store.DialectPostgres {
		// What autovacuum does to a table that has grown: statistics, and
		// the visibility map that index-only scans need.
		if _, err := db.Bun().ExecContext(b.Context(), "VACUUM ANALYZE runs"); err != nil {
			b.Fatal(err)
		}
	}
	return from, to
}

// BenchmarkRunActivity is the overview's activity chart over the last hour,
// with 10,000 runs in it, by minute (60 buckets) and at the most buckets
// (240), for everyone and for one user.
func BenchmarkRunActivity(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		from, to := seedOverview(b, db, 10_000)
		for _, tc := range []struct {
			name    string
			buckets int
			f       store.Filter
		}{
			{"buckets=60", 60, store.Filter{}},
			{"buckets=240", 240, store.Filter{}},
			{"buckets=60/user", 60, store.Filter{UserID: "u42"}},
		} {
			b.Run(tc.name, func(b *testing.B) {
				for b.Loop() {
					got, err := db.RunActivity(b.Context(), from, to, tc.buckets, tc.f)
					if err != nil {
						b.Fatal(err)
					}
					if len(got) != tc.buckets {
						b.Fatalf("%d buckets, want %d", len(got), tc.buckets)
					}
				}
			})
		}
	})
}

// BenchmarkRecentRuns is the overview's list of the newest runs, among
// 10,000, for everyone and for one user.
func BenchmarkRecentRuns(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		seedOverview(b, db, 10_000)
		for _, tc := range []struct {
			name  string
			limit int
			f     store.Filter
		}{
			{"limit=10", 10, store.Filter{}},
			{"limit=100", 100, store.Filter{}},
			{"limit=10/user", 10, store.Filter{UserID: "u42"}},
		} {
			b.Run(tc.name, func(b *testing.B) {
				for b.Loop() {
					got, err := db.RecentRuns(b.Context(), tc.limit, tc.f)
					if err != nil {
						b.Fatal(err)
					}
					if len(got) != tc.limit {
						b.Fatalf("%d runs, want %d", len(got), tc.limit)
					}
				}
			})
		}
	})
}

// BenchmarkHistoryDefault is the history a turn assembles by default: the
// last 10 completed runs of the session read from the store (each with a
// tool call and its result), fitted to the default token budget.
func BenchmarkHistoryDefault(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		ctx := b.Context()
		s := &store.Session{ID: "s", Type: store.SessionAgent, ComponentID: "bench", UserID: "u"}
		for i := range 12 {
			r := &store.Run{ID: fmt.Sprint("r", i), Input: fmt.Sprintf("What is %d+%d, and why?", i, i)}
			if err := db.StartRun(ctx, s, r); err != nil {
				b.Fatal(err)
			}
			finishedRun(r)
			r.Messages = []model.Message{
				{Role: model.RoleUser, Content: r.Input},
				{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{{ID: "c", Name: "calculator", Arguments: fmt.Sprintf(`{"expression":"%d+%d"}`, i, i)}}},
				{Role: model.RoleTool, ToolCallID: "c", Name: "calculator", Content: fmt.Sprint(2 * i)},
				{Role: model.RoleAssistant, Content: r.Content},
			}
			if err := db.FinishRun(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			runs, err := db.History(ctx, s.ID, spec.DefaultHistoryRuns)
			if err != nil {
				b.Fatal(err)
			}
			if h := session.FitHistory(runs, spec.DefaultHistoryTokens); len(h) != 40 {
				b.Fatalf("history has %d messages, want 40", len(h))
			}
		}
	})
}
