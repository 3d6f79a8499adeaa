package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
)

// holdWriter takes SQLite's only write connection, so that writes queue up
// behind it until the returned function gives it back.
func holdWriter(t *testing.T, db *store.DB) (release func()) {
	t.Helper()
	conn, err := store.WriteDB(db).Conn(t.Context())
	require.NoError(t, err)
	var once sync.Once
	release = func() { once.Do(func() { _ = conn.Close() }) }
	t.Cleanup(release)
	return release
}

// waitQueued waits until n writes wait in the queue (besides the one the
// writer holds while it waits for the connection).
func waitQueued(t *testing.T, db *store.DB, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return store.QueuedWrites(db) == n },
		10*time.Second, time.Millisecond, "writes queued: want %d", n)
}

// TestGroupCommitMixedOutcomes sends many writes at once, a fair share of
// which fail in different ways, and checks that each caller gets its own
// outcome: the failures leave no trace, everything else is committed.
func TestGroupCommitMixedOutcomes(t *testing.T) {
	for _, n := range []int{store.MaxWriteBatch - 4, 5 * store.MaxWriteBatch} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			testMixedOutcomes(t, n)
		})
	}
}

func testMixedOutcomes(t *testing.T, n int) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "troupe.db"))
	ctx := t.Context()
	owned := &store.Session{ID: "owned", Type: store.SessionAgent, ComponentID: "a", UserID: "owner"}
	require.NoError(t, db.StartRun(ctx, owned, &store.Run{ID: "seed", Input: "hi"}))
	before := store.WriteStatsOf(db)

	// Kinds of write, by i%5.
	const (
		newSession = iota // StartRun creating its session: committed
		join              // StartRun adding to owned as its owner: committed
		intruder          // StartRun adding to owned as someone else: ErrNotFound
		duplicate         // StartRun of a new session whose run id is taken: the session is undone
		ghost             // FinishRun of a run that does not exist: ErrNotFound
		kinds
	)
	errs := make([]error, n)
	release := holdWriter(t, db)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprint(i)
			switch i % kinds {
			case newSession:
				s := &store.Session{ID: "new-" + id, Type: store.SessionAgent, ComponentID: "a", UserID: "u"}
				errs[i] = db.StartRun(ctx, s, &store.Run{ID: "run-" + id, Input: "hello"})
			case join:
				s := &store.Session{ID: "owned", Type: store.SessionAgent, ComponentID: "a", UserID: "owner"}
				errs[i] = db.StartRun(ctx, s, &store.Run{ID: "run-" + id, Input: "again"})
			case intruder:
				s := &store.Session{ID: "owned", Type: store.SessionAgent, ComponentID: "a", UserID: "intruder"}
				errs[i] = db.StartRun(ctx, s, &store.Run{ID: "run-" + id, Input: "let me in"})
			case duplicate:
				s := &store.Session{ID: "dup-" + id, Type: store.SessionAgent, ComponentID: "a", UserID: "u"}
				errs[i] = db.StartRun(ctx, s, &store.Run{ID: "seed", Input: "again"})
			case ghost:
				errs[i] = db.FinishRun(ctx, &store.Run{ID: "ghost-" + id, Status: event.StatusCompleted})
			}
		})
	}
	// All of them wait for the connection (the writer holds one, the queue
	// holds at most a batch), so they commit in as few batches as possible.
	waitQueued(t, db, min(n-1, store.MaxWriteBatch))
	release()
	wg.Wait()

	joined := 0
	for i, err := range errs {
		id := fmt.Sprint(i)
		switch i % kinds {
		case newSession:
			require.NoError(t, err, i)
			got, err := db.GetRun(ctx, "run-"+id, store.Filter{UserID: "u"})
			require.NoError(t, err, "committed and readable from the read pool")
			require.Equal(t, "new-"+id, got.SessionID)
			require.Equal(t, event.StatusRunning, got.Status)
		case join:
			require.NoError(t, err, i)
			_, err = db.GetRun(ctx, "run-"+id, store.Filter{UserID: "owner"})
			require.NoError(t, err)
			joined++
		case intruder:
			require.ErrorIs(t, err, store.ErrNotFound, i)
			_, err = db.GetRun(ctx, "run-"+id, store.Filter{})
			require.ErrorIs(t, err, store.ErrNotFound, "nothing written")
		case duplicate:
			require.Error(t, err, i)
			require.NotErrorIs(t, err, store.ErrNotFound)
			_, err = db.GetSession(ctx, "dup-"+id, store.Filter{})
			require.ErrorIs(t, err, store.ErrNotFound, "the session it created is rolled back with it")
		case ghost:
			require.ErrorIs(t, err, store.ErrNotFound, i)
		}
	}
	s, err := db.GetSession(ctx, "owned", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, "owner", s.UserID)
	require.Equal(t, 1+joined, s.RunCount)
	seed, err := db.GetRun(ctx, "seed", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, "owned", seed.SessionID, "the duplicates did not touch the run they collided with")

	stats := store.WriteStatsOf(db)
	require.Equal(t, int64(n), stats.Ops-before.Ops)
	require.Positive(t, stats.Replays-before.Replays, "failing writes made batches run again with savepoints")
	batches := stats.Batches - before.Batches
	if n <= store.MaxWriteBatch {
		require.Equal(t, int64(1), batches, "everything queued commits together")
	} else {
		require.Less(t, batches, int64(n)/4, "writes share transactions")
	}
}

// TestGroupCommitBatchesUnderLoad checks that batches form on their own when
// many callers write at once, without anything holding the writer back.
func TestGroupCommitBatchesUnderLoad(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "troupe.db"))
	ctx := t.Context()
	before := store.WriteStatsOf(db)
	const workers, runs = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*runs*2)
	for w := range workers {
		wg.Go(func() {
			for i := range runs {
				id := fmt.Sprintf("%d-%d", w, i)
				s := &store.Session{ID: "s" + id, Type: store.SessionAgent, ComponentID: "a", UserID: "u"}
				r := &store.Run{ID: "r" + id, Input: "hi"}
				if err := db.StartRun(ctx, s, r); err != nil {
					errs <- err
					continue
				}
				r.Status, r.Content = event.StatusCompleted, "hello"
				errs <- db.FinishRun(ctx, r)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	stats := store.WriteStatsOf(db)
	ops, batches := stats.Ops-before.Ops, stats.Batches-before.Batches
	require.Equal(t, int64(workers*runs*2), ops)
	require.Less(t, batches, ops, "some transactions held more than one write")
	require.Zero(t, stats.Replays-before.Replays, "nothing failed, so nothing ran twice")
	t.Logf("%d writes in %d transactions", ops, batches)

	_, total, err := db.ListSessions(ctx, store.SessionQuery{})
	require.NoError(t, err)
	require.Equal(t, workers*runs, total)
}

// TestGroupCommitCancelledBeforeTaken checks that a write whose context ends
// while it waits in the queue returns at once and is never executed, while
// the writes around it are.
func TestGroupCommitCancelledBeforeTaken(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "troupe.db"))
	ctx := t.Context()
	start := func(ctx context.Context, id string) error {
		s := &store.Session{ID: "s-" + id, Type: store.SessionAgent, ComponentID: "a", UserID: "u"}
		return db.StartRun(ctx, s, &store.Run{ID: "r-" + id, Input: "hi"})
	}

	// A context that has already ended does not even queue.
	done, cancelNow := context.WithCancel(ctx)
	cancelNow()
	require.ErrorIs(t, start(done, "early"), context.Canceled)

	before := store.WriteStatsOf(db)
	release := holdWriter(t, db)
	cancelCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errs     = map[string]error{}
		mu       sync.Mutex
		launched = []string{"a", "cancelled", "b"}
	)
	for _, id := range launched {
		wg.Go(func() {
			c := ctx
			if id == "cancelled" {
				c = cancelCtx
			}
			err := start(c, id)
			mu.Lock()
			errs[id] = err
			mu.Unlock()
		})
	}
	// One write is with the writer, waiting for the connection; two queue.
	waitQueued(t, db, 2)
	cancel()
	// The cancelled caller returns while the connection is still held.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := errs["cancelled"]
		return ok
	}, 10*time.Second, time.Millisecond)
	release()
	wg.Wait()

	require.ErrorIs(t, errs["cancelled"], context.Canceled)
	require.NoError(t, errs["a"])
	require.NoError(t, errs["b"])
	for _, id := range []string{"early", "cancelled"} {
		_, err := db.GetSession(ctx, "s-"+id, store.Filter{})
		require.ErrorIs(t, err, store.ErrNotFound, id)
		_, err = db.GetRun(ctx, "r-"+id, store.Filter{})
		require.ErrorIs(t, err, store.ErrNotFound, id)
	}
	for _, id := range []string{"a", "b"} {
		_, err := db.GetRun(ctx, "r-"+id, store.Filter{})
		require.NoError(t, err, id)
	}
	require.Equal(t, int64(2), store.WriteStatsOf(db).Ops-before.Ops, "the cancelled write never ran")
}

// TestGroupCommitCloseAnswersQueued closes the store while writes wait for
// the connection: every one of them fails with ErrClosed, none is written,
// Close does not hang and no goroutine is left behind (see TestMain).
func TestGroupCommitCloseAnswersQueued(t *testing.T) {
	path := filepath.Join(t.TempDir(), "troupe.db")
	db, err := store.Open(t.Context(), path, store.Options{Logger: quiet})
	require.NoError(t, err)
	ctx := context.Background() // nothing but Close ends these writes
	release := holdWriter(t, db)

	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s := &store.Session{ID: fmt.Sprint("s", i), Type: store.SessionAgent, ComponentID: "a", UserID: "u"}
			errs[i] = db.StartRun(ctx, s, &store.Run{ID: fmt.Sprint("r", i), Input: "hi"})
		})
	}
	waitQueued(t, db, n-1)

	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs while writes are queued")
	}
	wg.Wait()
	for i, err := range errs {
		require.ErrorIs(t, err, store.ErrClosed, i)
	}
	err = db.StartRun(ctx, &store.Session{ID: "late", Type: store.SessionAgent, ComponentID: "a"}, &store.Run{ID: "late"})
	require.ErrorIs(t, err, store.ErrClosed, "writes after Close fail at once")
	release()

	db = openSQLite(t, path)
	_, total, err := db.ListSessions(t.Context(), store.SessionQuery{})
	require.NoError(t, err)
	require.Zero(t, total, "nothing was written")
}
