package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoArgs are a test kind's arguments.
type echoArgs struct {
	Text string `json:"text"`
}

func (echoArgs) Kind() string { return "test_echo" }

// recorder records the jobs a kind worked, and can hold them until their
// context ends.
type recorder struct {
	mu     sync.Mutex
	worked []string
	block  bool
	start  chan string
}

func (r *recorder) work(ctx context.Context, a echoArgs) error {
	r.mu.Lock()
	r.worked = append(r.worked, a.Text)
	block := r.block
	r.mu.Unlock()
	if r.start != nil {
		r.start <- a.Text
	}
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (r *recorder) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.worked...)
}

// openDB opens the SQLite file path through the store, which provides the
// job engine's driver, and closes it when the test ends.
func openDB(t testing.TB, path string) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), path, store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// run runs c until the returned stop, which returns Run's error.
func run(c *jobs.Client) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

func TestEnqueueRunsRegisteredWork(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		kind       jobs.Kind[echoArgs]
		inserted   []bool
		wantWorked []string
	}{
		{name: "unique: the same arguments queue one job", kind: jobs.Kind[echoArgs]{Unique: true},
			inserted: []bool{true, false}, wantWorked: []string{"hello"}},
		{name: "not unique: each enqueue is a job", kind: jobs.Kind[echoArgs]{},
			inserted: []bool{true, true}, wantWorked: []string{"hello", "hello"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := openDB(t, filepath.Join(t.TempDir(), "jobs.db"))
			reg := jobs.NewRegistry()
			rec := &recorder{}
			jobs.Register(reg, tt.kind, rec.work)
			c, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg})
			require.NoError(t, err)
			var inserted []bool
			for range tt.inserted {
				ok, err := jobs.Enqueue(t.Context(), c, tt.kind, echoArgs{Text: "hello"})
				require.NoError(t, err)
				inserted = append(inserted, ok)
			}
			require.Equal(t, tt.inserted, inserted)
			stop := run(c)
			require.Eventually(t, func() bool { return len(rec.texts()) == len(tt.wantWorked) }, 10*time.Second, 5*time.Millisecond)
			// Nothing more comes.
			time.Sleep(100 * time.Millisecond)
			require.NoError(t, stop())
			require.Equal(t, tt.wantWorked, rec.texts())
		})
	}
}

// TestStopCancelsAndTheNextClientRetries checks the graceful stop: a job
// still running at the stop timeout is cancelled, Run returns, and the next
// client on the same database works the job again.
func TestStopCancelsAndTheNextClientRetries(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobs.db")
	db := openDB(t, path)
	reg := jobs.NewRegistry()
	rec := &recorder{block: true, start: make(chan string, 1)}
	kind := jobs.Kind[echoArgs]{Unique: true, Timeout: jobs.NoTimeout}
	jobs.Register(reg, kind, rec.work)
	c, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg, StopTimeout: 50 * time.Millisecond})
	require.NoError(t, err)
	_, err = jobs.Enqueue(t.Context(), c, kind, echoArgs{Text: "long"})
	require.NoError(t, err)
	stop := run(c)
	require.Equal(t, "long", <-rec.start)
	start := time.Now()
	require.NoError(t, stop())
	require.Less(t, time.Since(start), 5*time.Second, "Run returned soon after the stop timeout")

	reg2 := jobs.NewRegistry()
	rec2 := &recorder{}
	jobs.Register(reg2, kind, rec2.work)
	c2, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg2})
	require.NoError(t, err)
	stop2 := run(c2)
	require.Eventually(t, func() bool { return len(rec2.texts()) == 1 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop2())
	require.Equal(t, []string{"long"}, rec2.texts())
}

// TestAbandonedJobsAreGivenBack checks what a client starting on SQLite does
// with jobs a killed process left running: retried at once when they have
// attempts left, discarded with the reason when they were to run at most
// once.
func TestAbandonedJobsAreGivenBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		maxAttempts int
		wantWorked  []string
		wantState   rivertype.JobState
	}{
		{name: "attempts left: worked again", maxAttempts: 5, wantWorked: []string{"left"}, wantState: rivertype.JobStateCompleted},
		{name: "at most once: discarded", maxAttempts: 1, wantWorked: nil, wantState: rivertype.JobStateDiscarded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := openDB(t, filepath.Join(t.TempDir(), "jobs.db"))
			d, err := db.SQLiteJobDriver()
			require.NoError(t, err)
			reg := jobs.NewRegistry()
			rec := &recorder{}
			jobs.Register(reg, jobs.Kind[echoArgs]{MaxAttempts: tt.maxAttempts}, rec.work)
			c, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg})
			require.NoError(t, err)
			// The row a killed process leaves: running, attempted an
			// hour ago (well within River's own rescue delay).
			args, err := json.Marshal(echoArgs{Text: "left"})
			require.NoError(t, err)
			at := time.Now().Add(-time.Minute).UTC()
			row, err := d.GetExecutor().JobInsertFull(t.Context(), &riverdriver.JobInsertFullParams{
				Attempt: 1, AttemptedAt: &at, CreatedAt: &at, ScheduledAt: &at, EncodedArgs: args, Kind: echoArgs{}.Kind(),
				MaxAttempts: tt.maxAttempts, Metadata: []byte("{}"), Priority: 1, Queue: jobs.DefaultQueue, State: rivertype.JobStateRunning,
			})
			require.NoError(t, err)
			stop := run(c)
			var got *rivertype.JobRow
			require.Eventually(t, func() bool {
				got, err = d.GetExecutor().JobGetByID(t.Context(), &riverdriver.JobGetByIDParams{ID: row.ID})
				return err == nil && got.State == tt.wantState
			}, 10*time.Second, 5*time.Millisecond)
			require.NoError(t, stop())
			require.Equal(t, tt.wantWorked, rec.texts())
			require.NotEmpty(t, got.Errors)
			require.Contains(t, got.Errors[0].Error, "abandoned")
		})
	}
}

// TestShortRescueDelay: a rescue delay (serve's --job-lease) shorter than
// River's default job timeout of a minute is accepted and jobs run; River
// refused to create the client before.
func TestShortRescueDelay(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "jobs.db"))
	reg := jobs.NewRegistry()
	rec := &recorder{}
	kind := jobs.Kind[echoArgs]{}
	jobs.Register(reg, kind, rec.work)
	c, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg, RescueAfter: 5 * time.Second})
	require.NoError(t, err)
	_, err = jobs.Enqueue(t.Context(), c, kind, echoArgs{Text: "soon"})
	require.NoError(t, err)
	stop := run(c)
	require.Eventually(t, func() bool { return len(rec.texts()) == 1 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop())
	require.Equal(t, []string{"soon"}, rec.texts())
}

// TestDeadClientsJobsAreRescued: on a database other processes share (no
// Exclusive), River's rescuer gives back a job a dead process left running
// once its lease (RescueAfter) has expired, also for a kind with NoTimeout,
// which River's rescuer used to ignore for ever.
func TestDeadClientsJobsAreRescued(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "jobs.db"))
	d, err := db.SQLiteJobDriver()
	require.NoError(t, err)
	reg := jobs.NewRegistry()
	rec := &recorder{}
	kind := jobs.Kind[echoArgs]{MaxAttempts: 2, Timeout: jobs.NoTimeout}
	jobs.Register(reg, kind, rec.work)
	c, err := jobs.New(t.Context(), d, jobs.Options{Registry: reg, RescueAfter: time.Second})
	require.NoError(t, err)
	args, err := json.Marshal(echoArgs{Text: "orphan"})
	require.NoError(t, err)
	at := time.Now().Add(-10 * time.Second).UTC()
	row, err := d.GetExecutor().JobInsertFull(t.Context(), &riverdriver.JobInsertFullParams{
		Attempt: 1, AttemptedAt: &at, CreatedAt: &at, ScheduledAt: &at, EncodedArgs: args, Kind: echoArgs{}.Kind(),
		MaxAttempts: 2, Metadata: []byte("{}"), Priority: 1, Queue: jobs.DefaultQueue, State: rivertype.JobStateRunning,
	})
	require.NoError(t, err)
	stop := run(c)
	var got *rivertype.JobRow
	require.Eventually(t, func() bool {
		got, err = d.GetExecutor().JobGetByID(t.Context(), &riverdriver.JobGetByIDParams{ID: row.ID})
		return err == nil && got.State == rivertype.JobStateCompleted
	}, 15*time.Second, 10*time.Millisecond)
	require.NoError(t, stop())
	require.Equal(t, []string{"orphan"}, rec.texts())
	require.Equal(t, 2, got.Attempt)
}

// TestEnqueueDeferred: jobs queued with EnqueueDeferred are inserted by
// Run's flusher (unique kinds stay unique, repeats in one batch included)
// and worked; queued before Run or after it stopped, they are inserted at
// once, and the next client works them.
func TestEnqueueDeferred(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobs.db")
	db := openDB(t, path)
	reg := jobs.NewRegistry()
	rec := &recorder{}
	kind := jobs.Kind[echoArgs]{UniqueDone: true}
	jobs.Register(reg, kind, rec.work)
	c, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg})
	require.NoError(t, err)

	// Before Run: inserted at once.
	require.NoError(t, jobs.EnqueueDeferred(t.Context(), c, kind, echoArgs{Text: "early"}))
	require.Zero(t, c.Deferred())
	stop := run(c)
	require.Eventually(t, func() bool { return len(rec.texts()) == 1 }, 10*time.Second, 5*time.Millisecond)

	// While Run runs: queued, inserted by the flusher, unique per args.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, jobs.EnqueueDeferred(t.Context(), c, kind, echoArgs{Text: fmt.Sprintf("job %d", i%25)}))
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return len(rec.texts()) == 26 && c.Deferred() == 0 }, 10*time.Second, 5*time.Millisecond, "worked %d, deferred %d", len(rec.texts()), c.Deferred())
	time.Sleep(100 * time.Millisecond)
	require.Len(t, rec.texts(), 26, "each unique job once")
	require.NoError(t, stop())

	// After Run: inserted at once, and the next client works it.
	require.NoError(t, jobs.EnqueueDeferred(t.Context(), c, kind, echoArgs{Text: "late"}))
	require.Zero(t, c.Deferred())
	c2, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg})
	require.NoError(t, err)
	stop2 := run(c2)
	require.Eventually(t, func() bool { return len(rec.texts()) == 27 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, stop2())
	require.Equal(t, "late", rec.texts()[26])
}
