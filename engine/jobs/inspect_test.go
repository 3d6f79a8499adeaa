package jobs_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for schema setup
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/store"
)

// databases opens a fresh database per test: a SQLite file, and a
// PostgreSQL schema when TROUPE_TEST_POSTGRES_DSN is set.
func databases(t testing.TB) map[string]func(t testing.TB) *store.DB {
	out := map[string]func(t testing.TB) *store.DB{
		"sqlite": func(t testing.TB) *store.DB { return openDB(t, filepath.Join(t.TempDir(), "jobs.db")) },
	}
	dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Log("TROUPE_TEST_POSTGRES_DSN not set: the PostgreSQL variant is skipped")
		return out
	}
	out["postgres"] = func(t testing.TB) *store.DB {
		admin, err := sql.Open("pgx", dsn)
		require.NoError(t, err)
		schema := "troupe_jobs_" + strings.ToLower(rand.Text()[:12])
		_, err = admin.ExecContext(t.Context(), `CREATE SCHEMA "`+schema+`"`)
		require.NoError(t, err)
		t.Cleanup(func() {
			_, err := admin.ExecContext(context.Background(), `DROP SCHEMA "`+schema+`" CASCADE`)
			require.NoError(t, err)
			require.NoError(t, admin.Close())
		})
		u, err := url.Parse(dsn)
		require.NoError(t, err)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		db, err := store.Open(t.Context(), u.String(), store.Options{MaxOpenConns: 4})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, db.Close()) })
		return db
	}
	return out
}

// taskArgs are a test kind whose arguments say what its work does.
type taskArgs struct {
	Name   string `json:"name"`
	Secret string `json:"secret"` // never shown
}

func (taskArgs) Kind() string { return "test_task" }

func (a taskArgs) Summary() map[string]string { return map[string]string{"name": a.Name} }

// tasks works test_task jobs: "fail" fails its first attempt, "block"
// holds until released (or its context ends), the rest succeed.
type tasks struct {
	mu      sync.Mutex
	worked  map[string]int
	release chan struct{}
}

func (w *tasks) work(ctx context.Context, a taskArgs) error {
	w.mu.Lock()
	w.worked[a.Name]++
	w.mu.Unlock()
	switch {
	case a.Name == "fail" && jobs.Attempt(ctx) == 1:
		return errors.New("boom: the first attempt fails")
	case a.Name == "block":
		select {
		case <-w.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (w *tasks) count(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.worked[name]
}

var task = jobs.Kind[taskArgs]{MaxAttempts: 1, Queue: "tasks", Unique: true}

func stateOf(t *testing.T, c *jobs.Client, id int64) string {
	t.Helper()
	j, err := c.Job(t.Context(), id)
	require.NoError(t, err)
	return j.State
}

// TestQueueVisibility enqueues real jobs and checks what operators see of
// them: counts by queue, kind and state with the age of the oldest
// available job, the job list with its filters, errors and cursor paging,
// and requeueing (a discarded job runs again; a running or unknown one is
// refused).
func TestQueueVisibility(t *testing.T) {
	t.Parallel()
	for name, open := range databases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := open(t)
			reg := jobs.NewRegistry()
			w := &tasks{worked: map[string]int{}, release: make(chan struct{})}
			jobs.Register(reg, task, w.work)
			c, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg, Queues: map[string]int{"tasks": 3}})
			require.NoError(t, err)
			names := []string{"ok-1", "ok-2", "ok-3", "fail", "block"}
			for _, n := range names {
				ok, err := jobs.Enqueue(t.Context(), c, task, taskArgs{Name: n, Secret: "sk-do-not-show"})
				require.NoError(t, err)
				require.True(t, ok)
			}

			// Before any client works them, every job waits, and the oldest
			// has waited at least as long as the test slept.
			time.Sleep(1100 * time.Millisecond)
			stats, err := c.Stats(t.Context())
			require.NoError(t, err)
			tq := findQueue(t, stats, "tasks")
			require.Equal(t, 3, tq.Concurrency)
			require.Equal(t, jobs.Counts{Available: 5}, tq.Counts)
			require.Equal(t, 5, tq.Counts.Waiting())
			require.GreaterOrEqual(t, tq.OldestAvailable, time.Second)
			require.Less(t, tq.OldestAvailable, time.Minute)
			require.Len(t, tq.Kinds, 1)
			require.Equal(t, "test_task", tq.Kinds[0].Kind)
			require.Equal(t, tq.OldestAvailable, tq.Kinds[0].OldestAvailable)
			dq := findQueue(t, stats, jobs.DefaultQueue)
			require.Equal(t, 2, dq.Concurrency, "the default queue is worked with the default concurrency")
			require.Equal(t, jobs.Counts{}, dq.Counts)

			stop := run(c)
			defer func() { close(w.release); require.NoError(t, stop()) }()
			require.Eventually(t, func() bool {
				s, err := c.Stats(t.Context())
				require.NoError(t, err)
				return findQueue(t, s, "tasks").Counts == jobs.Counts{Completed: 3, Discarded: 1, Running: 1}
			}, 15*time.Second, 10*time.Millisecond)
			stats, err = c.Stats(t.Context())
			require.NoError(t, err)
			require.Zero(t, findQueue(t, stats, "tasks").OldestAvailable, "none is available")
			require.Equal(t, map[string]uint64{"test_task": 1}, c.Counters().FailedAttempts)

			// The list: newest first, with filters.
			all, err := c.Jobs(t.Context(), jobs.Query{})
			require.NoError(t, err)
			require.Len(t, all.Jobs, 5)
			require.Empty(t, all.Next)
			var gotNames []string
			for _, j := range all.Jobs {
				gotNames = append(gotNames, j.Summary["name"])
				require.Equal(t, map[string]string{"name": j.Summary["name"]}, j.Summary, "only the summary, never the arguments")
			}
			require.Equal(t, []string{"block", "fail", "ok-3", "ok-2", "ok-1"}, gotNames)

			tests := []struct {
				name  string
				q     jobs.Query
				names []string
			}{
				{name: "discarded", q: jobs.Query{States: []string{jobs.StateDiscarded}}, names: []string{"fail"}},
				{name: "running or discarded", q: jobs.Query{States: []string{jobs.StateRunning, jobs.StateDiscarded}}, names: []string{"block", "fail"}},
				{name: "completed", q: jobs.Query{States: []string{jobs.StateCompleted}}, names: []string{"ok-3", "ok-2", "ok-1"}},
				{name: "kind", q: jobs.Query{Kind: "test_task"}, names: []string{"block", "fail", "ok-3", "ok-2", "ok-1"}},
				{name: "other kind", q: jobs.Query{Kind: "knowledge_ingest"}},
				{name: "queue", q: jobs.Query{Queue: "tasks", States: []string{jobs.StateRunning}}, names: []string{"block"}},
				{name: "other queue", q: jobs.Query{Queue: jobs.DefaultQueue}},
			}
			for _, tt := range tests {
				p, err := c.Jobs(t.Context(), tt.q)
				require.NoError(t, err, tt.name)
				var got []string
				for _, j := range p.Jobs {
					got = append(got, j.Summary["name"])
				}
				require.Equal(t, tt.names, got, tt.name)
			}
			_, err = c.Jobs(t.Context(), jobs.Query{States: []string{"lost"}})
			require.ErrorIs(t, err, jobs.ErrInvalid)
			_, err = c.Jobs(t.Context(), jobs.Query{Cursor: "not-a-cursor"})
			require.ErrorIs(t, err, jobs.ErrInvalid)

			// The discarded job carries its attempt's error.
			failed, err := c.Jobs(t.Context(), jobs.Query{States: []string{jobs.StateDiscarded}})
			require.NoError(t, err)
			fj := failed.Jobs[0]
			require.Equal(t, 1, fj.Attempt)
			require.Equal(t, 1, fj.MaxAttempts)
			require.NotNil(t, fj.FinalizedAt)
			require.NotNil(t, fj.AttemptedAt)
			require.Len(t, fj.Errors, 1)
			require.Equal(t, 1, fj.Errors[0].Attempt)
			require.Equal(t, "boom: the first attempt fails", fj.Errors[0].Error)

			// Paging: two at a time, each job once, in order.
			var paged []int64
			cursor := ""
			pages := 0
			for {
				p, err := c.Jobs(t.Context(), jobs.Query{Limit: 2, Cursor: cursor})
				require.NoError(t, err)
				pages++
				for _, j := range p.Jobs {
					paged = append(paged, j.ID)
				}
				if p.Next == "" {
					break
				}
				cursor = p.Next
			}
			var ids []int64
			for _, j := range all.Jobs {
				ids = append(ids, j.ID)
			}
			require.Equal(t, ids, paged)
			require.Equal(t, 3, pages)
			require.True(t, slices.IsSortedFunc(ids, func(a, b int64) int { return int(b - a) }))

			// Requeue: refused for a running job and an unknown one; a
			// discarded job runs again, with one more attempt.
			blocked := all.Jobs[0]
			_, err = c.Requeue(t.Context(), blocked.ID)
			require.ErrorIs(t, err, jobs.ErrRunning)
			_, err = c.Requeue(t.Context(), 1<<40)
			require.ErrorIs(t, err, jobs.ErrNotFound)
			_, err = c.Job(t.Context(), 1<<40)
			require.ErrorIs(t, err, jobs.ErrNotFound)
			re, err := c.Requeue(t.Context(), fj.ID)
			require.NoError(t, err)
			require.Equal(t, jobs.StateAvailable, re.State)
			require.Equal(t, 2, re.MaxAttempts)
			require.Eventually(t, func() bool { return stateOf(t, c, fj.ID) == jobs.StateCompleted }, 15*time.Second, 10*time.Millisecond)
			require.Equal(t, 2, w.count("fail"))
			require.Equal(t, 1, w.count("ok-1"), "requeueing one job runs no other")
		})
	}
}

func findQueue(t *testing.T, stats []jobs.QueueStats, name string) jobs.QueueStats {
	t.Helper()
	i := slices.IndexFunc(stats, func(q jobs.QueueStats) bool { return q.Queue == name })
	require.GreaterOrEqual(t, i, 0, "queue %s in %+v", name, stats)
	return stats[i]
}

func TestSummariesRevealNoInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args interface{ Summary() map[string]string }
		want map[string]string
	}{
		{name: "background run", args: jobs.RunArgs{RunID: "r1", SessionID: "s1", Component: "agent:helpdesk"},
			want: map[string]string{"run_id": "r1", "session_id": "s1", "component": "agent:helpdesk"}},
		{name: "background run queued before summaries", args: jobs.RunArgs{RunID: "r1"}, want: map[string]string{"run_id": "r1"}},
		{name: "ingestion", args: jobs.IngestArgs{DocumentID: "d1"}, want: map[string]string{"document_id": "d1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.args.Summary())
		})
	}
}
