package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrClosed reports a write that was not executed because the store was
// closed before it could be.
var ErrClosed = errors.New("store is closed")

// maxBatch bounds the writes committed by one SQLite transaction. Past a few
// dozen the commit is no longer what costs, and a bounded batch keeps the
// first caller's wait bounded too.
const maxBatch = 64

// writeFunc is one write operation: statements run in tx, on behalf of one
// caller. ctx is not cancelled (see writer); fn must not keep tx.
//
// When fn fails, the transaction is rolled back up to where fn began, so a
// failing fn need not clean up after itself. fn may run twice (see
// writer.attempt), the first run's writes undone: it must set, not
// accumulate, what it reports to its caller, and have no effect outside tx.
type writeFunc func(ctx context.Context, tx *sql.Tx) error

// States of a writeOp. The caller and the writer race to move an op out of
// opQueued with a compare-and-swap, so exactly one of them decides whether it
// runs.
const (
	opQueued    int32 = iota // waiting for the writer
	opTaken                  // the writer runs it and will answer
	opAbandoned              // the caller gave up first; it never runs
)

type writeOp struct {
	ctx   context.Context // the caller's, for its values only
	fn    writeFunc
	state atomic.Int32
	err   error         // set by the writer before it closes done
	done  chan struct{} // closed once the op is committed or has failed
}

// writer is SQLite's group commit. A SQLite commit costs WAL frame writes and
// shm locking syscalls whatever it contains, and with one writer connection
// those commits are the server's bottleneck: one goroutine therefore takes
// the write operations from a queue and commits all those already waiting
// (up to maxBatch) in one transaction. An operation that fails is undone
// alone and reports its own error while the others commit: the batch is then
// run again with each operation inside its own SAVEPOINT (see attempt). The
// writer never waits for more operations to arrive: a lone operation is
// committed at once, as it was before batching.
//
// Callers still return only once their operation is committed, so the
// durability of StartRun and the others is unchanged.
type writer struct {
	db *sql.DB
	st *stmts
	q  chan *writeOp
	// stop asks run to answer what is queued with ErrClosed and return; done
	// is closed when it has.
	stop, done chan struct{}
	// ctx bounds the wait for the write connection (which Bun users or tests
	// may be holding) so that Close never hangs on it.
	ctx    context.Context
	cancel context.CancelFunc
	buf    []*writeOp
	errs   []error

	// For tests: batches taken, the operations they held, and batches run
	// again with savepoints.
	batches, ops, replays atomic.Int64
}

func newWriter(db *sql.DB, st *stmts) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{
		db:     db,
		st:     st,
		q:      make(chan *writeOp, maxBatch),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
		buf:    make([]*writeOp, 0, maxBatch),
		errs:   make([]error, maxBatch),
	}
	go w.run()
	return w
}

// close answers the queued operations with ErrClosed and waits for the
// writer goroutine to end. A batch already holding the connection finishes
// first: its callers were promised an answer.
func (w *writer) close() {
	w.cancel()
	close(w.stop)
	<-w.done
}

// do queues fn and waits for it to be committed. The caller's context bounds
// the wait in the queue: when it ends first, fn never runs and do returns the
// context's error. Once the writer has taken fn, it runs to the end of its
// batch, and do returns its real outcome, so that an error always means that
// nothing was committed; that wait is short, because the writer only takes
// operations once it holds the write connection.
func (w *writer) do(ctx context.Context, fn writeFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case w.q <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.stop:
		return ErrClosed
	}
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
		if op.state.CompareAndSwap(opQueued, opAbandoned) {
			return ctx.Err()
		}
		<-op.done
		return op.err
	case <-w.done:
		// The op may have gone into the queue after the writer drained it.
		select {
		case <-op.done:
			return op.err
		default:
			return ErrClosed
		}
	}
}

func (w *writer) run() {
	defer close(w.done)
	for {
		// Stopping wins over a non-empty queue, which select alone would
		// pick at random.
		select {
		case <-w.stop:
			w.drain()
			return
		default:
		}
		select {
		case <-w.stop:
			w.drain()
			return
		case op := <-w.q:
			w.batch(op)
		}
	}
}

// drain answers every queued operation with ErrClosed.
func (w *writer) drain() {
	for {
		select {
		case op := <-w.q:
			answer(op, ErrClosed)
		default:
			return
		}
	}
}

func answer(op *writeOp, err error) {
	op.err = err
	close(op.done)
}

// batch commits first and the operations queued behind it.
func (w *writer) batch(first *writeOp) {
	conn, err := w.db.Conn(w.ctx)
	if err != nil {
		if w.ctx.Err() != nil {
			err = ErrClosed
		}
		answer(first, err)
		return
	}
	defer conn.Close()

	// Collect the batch only now: operations that arrived while the
	// connection was busy join it instead of waiting for another commit.
	ops := append(w.buf[:0], first)
	defer clear(w.buf[:maxBatch]) // no references to answered ops
collect:
	for len(ops) < maxBatch {
		select {
		case op := <-w.q:
			ops = append(ops, op)
		default:
			break collect
		}
	}
	live := ops[:0]
	for _, op := range ops {
		if op.state.CompareAndSwap(opQueued, opTaken) {
			live = append(live, op)
		}
		// Otherwise its caller has left and is not waiting for an answer.
	}
	if len(live) == 0 {
		return
	}
	w.batches.Add(1)
	w.ops.Add(int64(len(live)))

	errs := w.errs[:len(live)]
	if !w.attempt(conn, live, errs, false) {
		w.replays.Add(1)
		clear(errs)
		w.attempt(conn, live, errs, true)
	}
	for i, op := range live {
		answer(op, errs[i])
	}
	clear(errs)
}

// attempt runs ops in one transaction on conn and sets errs[i] to the outcome
// of ops[i]. With savepoints, each op runs inside its own. Without, it
// reports false when an op failed while others were in the batch: the
// transaction was rolled back to undo that op's partial writes, taking the
// others' with it, and the batch must be run again with savepoints.
//
// Savepoints are the exception because they are far from free: SQLite
// copies every existing page an op modifies into a sub-journal (allocated
// and freed op by op), which cost about 40% of the writer's throughput in
// BenchmarkStartFinishRunParallel, while operations rarely fail once past
// their checks.
func (w *writer) attempt(conn *sql.Conn, ops []*writeOp, errs []error, savepoints bool) bool {
	// Background: a statement interrupted halfway would fail operations whose
	// callers still wait, and without a Done channel neither database/sql nor
	// the driver starts a goroutine per statement to watch it.
	bg := context.Background()
	tx, err := conn.BeginTx(bg, nil)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return true
	}
	for i, op := range ops {
		if !savepoints {
			if errs[i] = op.fn(context.WithoutCancel(op.ctx), tx); errs[i] != nil {
				_ = tx.Rollback()
				// Alone, op is the only one its rollback concerns.
				return len(ops) == 1
			}
			continue
		}
		var txErr error
		if errs[i], txErr = w.savepoint(tx, op); txErr != nil {
			// The transaction itself failed (SQLite rolls it back entirely
			// on errors such as SQLITE_FULL or SQLITE_IOERR), so nothing in
			// it can be committed: every operation gets an error.
			_ = tx.Rollback()
			txErr = fmt.Errorf("write batch rolled back: %w", txErr)
			for j := range errs {
				if errs[j] == nil {
					errs[j] = txErr
				}
			}
			return true
		}
	}
	if err := tx.Commit(); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return true
}

// savepoint runs op inside its own savepoint, rolling back to it when op
// fails. It returns op's error, and separately an error of the transaction
// that leaves it unusable.
func (w *writer) savepoint(tx *sql.Tx, op *writeOp) (opErr, txErr error) {
	bg := context.Background()
	if _, err := tx.StmtContext(bg, w.st.savepoint).ExecContext(bg); err != nil {
		return nil, fmt.Errorf("opening savepoint: %w", err)
	}
	opErr = op.fn(context.WithoutCancel(op.ctx), tx)
	if opErr != nil {
		// ROLLBACK TO undoes the op but keeps the savepoint open; RELEASE
		// below closes it.
		if _, err := tx.StmtContext(bg, w.st.rollbackToSavepoint).ExecContext(bg); err != nil {
			return opErr, fmt.Errorf("rolling back to savepoint: %w (after %w)", err, opErr)
		}
	}
	if _, err := tx.StmtContext(bg, w.st.releaseSavepoint).ExecContext(bg); err != nil {
		return opErr, fmt.Errorf("releasing savepoint: %w", err)
	}
	return opErr, nil
}

// write runs fn in a write transaction. On SQLite it goes through the group
// commit (see writer); on PostgreSQL, whose pool lets transactions run side by
// side, it is a transaction of its own under the caller's context.
func (db *DB) write(ctx context.Context, fn writeFunc) error {
	if db.wq != nil {
		return db.wq.do(ctx, fn)
	}
	return db.inTx(ctx, func(tx *sql.Tx) error { return fn(ctx, tx) })
}
