package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
)

// Run is the run service's record of one turn (see session.Run). The store
// keeps the service's types rather than its own, so that a run reads and
// writes the same value everywhere.
type Run = session.Run

const runColumns = `id, session_id, parent_run_id, component_id, type, user_id, input, content, status, error,
	tools, messages, metrics, model, provider, spec_version, created_at, updated_at`

// runSelectColumns are runColumns plus those written only when a run finishes.
const runSelectColumns = runColumns + `, refs, partial, trigger_name, reasoning`

// Both dialects take $N placeholders. They are numbered in order of first
// appearance in every statement, because SQLite numbers parameters that way
// and mattn/go-sqlite3 (the cgosqlite build) binds arguments by that number.
const (
	sqlInsertSession = `INSERT INTO sessions (id, type, component_id, user_id, name, state, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`
	sqlSelectSessionForRun = `SELECT type, component_id, user_id, name, state, created_at, updated_at
		FROM sessions WHERE id = $1`
	// A new run also records the replica executing it (see runArgs).
	sqlInsertRun = `INSERT INTO runs (` + runColumns + `, replica_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`
	// The session's updated_at only moves forward, whatever order concurrent
	// runs of one session finish in.
	sqlTouchSession = `UPDATE sessions SET updated_at = $1
		WHERE id = (SELECT session_id FROM runs WHERE id = $2) AND updated_at < $1`
	sqlGetRun   = `SELECT ` + runSelectColumns + ` FROM runs WHERE id = $1 AND ($2 = '' OR user_id = $2)`
	sqlListRuns = `SELECT ` + runSelectColumns + ` FROM runs
		WHERE session_id = $1 AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $1 AND ($2 = '' OR s.user_id = $2))
		ORDER BY created_at, id`
	// The runs from the n-th newest top-level run on: what a page showing
	// the latest n turns needs (see LatestRuns), found through the
	// (session_id, created_at) index without reading older rows.
	sqlLatestRuns = `SELECT ` + runSelectColumns + ` FROM runs
		WHERE session_id = $1 AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $1 AND ($2 = '' OR s.user_id = $2))
		AND created_at >= (SELECT MIN(created_at) FROM (SELECT created_at FROM runs
			WHERE session_id = $1 AND parent_run_id = '' ORDER BY created_at DESC, id DESC LIMIT $3) latest)
		ORDER BY created_at, id`
	sqlCountTopLevelRuns = `SELECT COUNT(*) FROM runs WHERE session_id = $1 AND parent_run_id = ''`
	sqlSessionVisible    = `SELECT 1 FROM sessions WHERE id = $1 AND ($2 = '' OR user_id = $2)`
	// A finished top-level run of a visible session; member runs finish
	// before their team's run does, so they do not count.
	sqlFinishedRun = `SELECT 1 FROM runs r WHERE r.session_id = $1 AND r.parent_run_id = '' AND r.status <> 'RUNNING'
		AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $1 AND ($2 = '' OR s.user_id = $2)) LIMIT 1`
	// History reads newest first so LIMIT keeps the latest runs; member runs
	// are a team's internal conversations, not the session's.
	sqlHistory = `SELECT messages FROM runs
		WHERE session_id = $1 AND status = 'COMPLETED' AND parent_run_id = ''
		ORDER BY created_at DESC, id DESC LIMIT $2`
)

// sqlFinishRun stores a finished run (see FinishRun for the arguments). The
// latency is the one computed in Go ($12) when the run's stored created_at is
// the one Go computed it from ($11, NULL when unknown), and otherwise computed
// from the stored created_at, so that it never depends on what the caller
// passed as CreatedAt.
var sqlFinishRun = `UPDATE runs SET content = $1, status = $2, error = $3, tools = $4, messages = $5, metrics = $6,
		model = $7, provider = $8, updated_at = $9, refs = $10,
		latency_us = CASE WHEN created_at = $11 THEN $12 ELSE ` + sqliteLatencyUS("$9", "created_at") + ` END,
		partial = $14, input = COALESCE($15, input), cost = $16, tokens = $17, cost_unknown = $18, reasoning = $19,
		history_tokens = $20
	WHERE id = $13`

// latencyUS is a finished run's latency as the latency_us column holds it:
// the microseconds from created to updated, never negative.
func latencyUS(created, updated time.Time) int64 {
	return max(0, updated.UnixMicro()-created.UnixMicro())
}

// sqliteLatencyUS is SQL computing latencyUS from two SQLite timestamps,
// text in sqliteTimeFormat: whole seconds through unixepoch, whose own
// fractions stop at milliseconds, plus the microsecond digits. Migration 0004
// backfills latency_us with the same expression. Go computes the latency
// more cheaply, so FinishRun runs it only for a caller that did not pass the
// run's CreatedAt; crash recovery runs it once per interrupted run.
func sqliteLatencyUS(updated, created string) string {
	return `max(0, (unixepoch(substr(` + updated + `, 1, 19)) - unixepoch(substr(` + created + `, 1, 19))) * 1000000
		+ CAST(substr(` + updated + `, 21, 6) AS INTEGER) - CAST(substr(` + created + `, 21, 6) AS INTEGER))`
}

// postgresLatencyUS is latencyUS in PostgreSQL from two timestamptz values,
// as migration 0004 backfills latency_us.
func postgresLatencyUS(updated, created string) string {
	return `GREATEST(0, CAST(EXTRACT(EPOCH FROM ` + updated + ` - ` + created + `) * 1000000 AS BIGINT))`
}

// StartRun records the start of r in session s, with the files it was sent
// with (r.Files, whose bytes are stored already), in one transaction. When no
// session s.ID exists it is created from s (its Name derived from r.Input when
// empty, its times defaulting to the run's); when it exists but belongs to
// another user or component (type and id), StartRun writes nothing and returns
// an error wrapping ErrNotFound.
//
// On success r is RUNNING (PENDING if it was: a background run) with SessionID, UserID and timestamps filled in (and
// ComponentID and Type defaulted from s), and s describes the stored session:
// for an existing session its stored name, state and times. RunCount is left
// alone; GetSession and ListSessions fill it.
func (db *DB) StartRun(ctx context.Context, s *Session, r *Run) error {
	if err := validateStart(s, r); err != nil {
		return fmt.Errorf("store: starting run: %w", err)
	}
	run := *r
	run.SessionID, run.UserID = s.ID, s.UserID
	if run.Status != event.StatusPending {
		// Only a background run is stored before it runs.
		run.Status = event.StatusRunning
	}
	if run.ComponentID == "" {
		run.ComponentID = s.ComponentID
	}
	if run.Type == "" {
		run.Type = s.Type
	}
	run.CreatedAt = normTime(run.CreatedAt)
	if run.CreatedAt.IsZero() {
		run.CreatedAt = now()
	}
	run.UpdatedAt = run.CreatedAt

	sess := *s
	sess.Name = text(sess.Name)
	if sess.Name == "" {
		sess.Name = SessionName(run.Input)
	}
	sess.CreatedAt = normTime(sess.CreatedAt)
	if sess.CreatedAt.IsZero() {
		sess.CreatedAt = run.CreatedAt
	}
	sess.UpdatedAt = normTime(sess.UpdatedAt)
	if sess.UpdatedAt.IsZero() {
		sess.UpdatedAt = sess.CreatedAt
	}
	state, err := jsonArg(sess.State)
	if err != nil {
		return fmt.Errorf("store: starting run %s: encoding session state: %w", run.ID, err)
	}
	runArgs, err := db.runArgs(&run)
	if err != nil {
		return fmt.Errorf("store: starting run %s: %w", run.ID, err)
	}

	sessArgs := []any{sess.ID, sess.Type, sess.ComponentID, sess.UserID, sess.Name, state,
		db.timeArg(sess.CreatedAt), db.timeArg(sess.UpdatedAt)}
	run.Files = slices.Clone(run.Files)
	files := db.runFileArgs(&run)
	var stored *storedSession
	if db.dialect == DialectPostgres {
		stored, err = db.startRunPostgres(ctx, &sess, sessArgs, runArgs, files)
	} else {
		stored, err = db.startRunTx(ctx, &sess, sessArgs, runArgs, files)
	}
	if err == nil && stored != nil {
		if !sameOwner(&stored.Session, &sess) {
			err = fmt.Errorf("session %q: %w", sess.ID, ErrNotFound)
		} else {
			sess.Name, sess.CreatedAt, sess.UpdatedAt = stored.Name, stored.CreatedAt, stored.UpdatedAt
			sess.State = nil
			err = decodeJSON(stored.state, &sess.State)
		}
	}
	if err != nil {
		return fmt.Errorf("store: starting run %s: %w", run.ID, err)
	}
	*s, *r = sess, run
	return nil
}

// sameOwner reports whether a and b belong to the same user and component;
// only then may a run of b be added to session a.
func sameOwner(a, b *Session) bool {
	return a.UserID == b.UserID && a.Type == b.Type && a.ComponentID == b.ComponentID
}

// storedSession is an existing session as StartRun found it.
type storedSession struct {
	Session
	state []byte
}

func (s *storedSession) dest() []any {
	return []any{&s.Type, &s.ComponentID, &s.UserID, &s.Name, &s.state, timeDest{&s.CreatedAt}, timeDest{&s.UpdatedAt}}
}

// startRunTx is StartRun as a transaction of separate statements, for SQLite,
// where a statement costs no network round trip. It returns the existing
// session, or nil when it created it. When the existing session belongs to
// someone else it returns it without inserting the run, and the caller's
// error rolls nothing back because nothing was written.
func (db *DB) startRunTx(ctx context.Context, sess *Session, sessArgs, runArgs []any, files [][]any) (*storedSession, error) {
	var stored *storedSession
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		stored = nil // this may be a second run (see writeFunc)
		// Insert-or-nothing first: creating the session is the common path for
		// a new conversation, and it stays correct when two runs open the same
		// new session at once (the second reads the first's row below).
		res, err := tx.StmtContext(ctx, db.st.insertSession).ExecContext(ctx, sessArgs...)
		if err != nil {
			return fmt.Errorf("creating session: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			stored = &storedSession{}
			if err := tx.StmtContext(ctx, db.st.selectSessionForRun).QueryRowContext(ctx, sess.ID).Scan(stored.dest()...); err != nil {
				return fmt.Errorf("reading session: %w", err)
			}
			if !sameOwner(&stored.Session, sess) {
				return nil // the caller reports it; nothing was written
			}
		}
		if _, err := tx.StmtContext(ctx, db.st.insertRun).ExecContext(ctx, runArgs...); err != nil {
			return fmt.Errorf("inserting run: %w", err)
		}
		return insertRunFiles(ctx, tx, files)
	})
	return stored, err
}

// startRunPostgres is StartRun as a single statement (see sqlStartRunPostgres):
// one network round trip instead of four, and atomic without BEGIN/COMMIT. A
// run sent with files is that statement and the files' rows in one
// transaction.
func (db *DB) startRunPostgres(ctx context.Context, sess *Session, sessArgs, runArgs []any, files [][]any) (*storedSession, error) {
	args := append(sessArgs[:len(sessArgs):len(sessArgs)], runArgs...)
	if len(files) == 0 {
		return startRunStmt(ctx, db.st.startRun, args, sessArgs[0])
	}
	var stored *storedSession
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if stored, err = startRunStmt(ctx, tx.StmtContext(ctx, db.st.startRun), args, sessArgs[0]); err != nil {
			return err
		}
		if stored != nil && !sameOwner(&stored.Session, sess) {
			return nil // no run was inserted; the caller reports it
		}
		return insertRunFiles(ctx, tx, files)
	})
	return stored, err
}

// startRunStmt runs sqlStartRunPostgres: the existing session, or nil when
// it created it.
func startRunStmt(ctx context.Context, st *sql.Stmt, args []any, sessionID any) (*storedSession, error) {
	// The statement returns no row when another transaction created the
	// session after the statement's snapshot was taken: the insert then
	// conflicts with a row the select cannot see yet. A new statement has a
	// new snapshot (in a transaction too, at READ COMMITTED), so retrying
	// settles it.
	for range 3 {
		var (
			created bool
			stored  storedSession
		)
		err := st.QueryRowContext(ctx, args...).Scan(append([]any{&created}, stored.dest()...)...)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if created {
			return nil, nil
		}
		return &stored, nil
	}
	return nil, fmt.Errorf("session %v: created and deleted concurrently, giving up", sessionID)
}

func validateStart(s *Session, r *Run) error {
	switch {
	case s.ID == "":
		return fmt.Errorf("session id is required: %w", ErrInvalid)
	case s.Type != SessionAgent && s.Type != SessionTeam && s.Type != SessionWorkflow:
		return fmt.Errorf("session type %q is not %q, %q or %q: %w", s.Type, SessionAgent, SessionTeam, SessionWorkflow, ErrInvalid)
	case s.ComponentID == "":
		return fmt.Errorf("session component id is required: %w", ErrInvalid)
	case r.ID == "":
		return fmt.Errorf("run id is required: %w", ErrInvalid)
	case r.SessionID != "" && r.SessionID != s.ID:
		return fmt.Errorf("run session id %q differs from the session's %q: %w", r.SessionID, s.ID, ErrInvalid)
	case r.UserID != "" && r.UserID != s.UserID:
		return fmt.Errorf("run user id differs from the session's: %w", ErrInvalid)
	case r.Type != "" && r.Type != SessionAgent && r.Type != SessionTeam && r.Type != SessionWorkflow:
		return fmt.Errorf("run type %q is not %q, %q or %q: %w", r.Type, SessionAgent, SessionTeam, SessionWorkflow, ErrInvalid)
	}
	return nil
}

// runArgs returns the arguments of sqlInsertRun for r. A RUNNING run is
// executed by this replica, which recovery must know; a PENDING one gets its
// replica when one claims it (ClaimRun).
func (db *DB) runArgs(r *Run) ([]any, error) {
	tools, messages, metrics, err := runJSON(r)
	if err != nil {
		return nil, err
	}
	replica := ""
	if r.Status == event.StatusRunning {
		replica = db.replica
	}
	return []any{
		r.ID, r.SessionID, r.ParentRunID, r.ComponentID, r.Type, r.UserID,
		text(r.Input), text(r.Content), string(r.Status), text(r.Error),
		tools, messages, metrics, r.Model, r.Provider, r.SpecVersion,
		db.timeArg(r.CreatedAt), db.timeArg(r.UpdatedAt), replica,
	}, nil
}

func runJSON(r *Run) (tools, messages, metrics string, err error) {
	if tools, err = jsonArg(r.Tools); err != nil {
		return "", "", "", fmt.Errorf("encoding tools: %w", err)
	}
	if messages, err = jsonArg(r.Messages); err != nil {
		return "", "", "", fmt.Errorf("encoding messages: %w", err)
	}
	if metrics, err = jsonArg(r.Metrics); err != nil {
		return "", "", "", fmt.Errorf("encoding metrics: %w", err)
	}
	return tools, messages, metrics, nil
}

// FinishRun stores the run's final state (content, status, error, tools,
// messages, metrics, model, provider; updated_at, now when r.UpdatedAt is
// zero) and its latency, and bumps the session's updated_at, in one
// transaction. r.Status must be terminal. It returns an error wrapping
// ErrNotFound when the run does not exist.
//
// The latency is updated_at minus the stored created_at. It is cheapest to
// store when r.CreatedAt is the run's, as StartRun left it; any other value
// is ignored.
//
// A run often finishes because its context was cancelled; pass a context that
// outlives it (context.WithoutCancel) or the result will not be saved.
func (db *DB) FinishRun(ctx context.Context, r *Run) error { return db.finishRun(ctx, r, nil) }

// finishRun is FinishRun, storing events of the run in the same transaction
// (see FinishRunWithEvents).
func (db *DB) finishRun(ctx context.Context, r *Run, events []event.Event) error {
	if r.ID == "" {
		return fmt.Errorf("store: finishing run: run id is required: %w", ErrInvalid)
	}
	if !r.Status.Terminal() {
		return fmt.Errorf("store: finishing run %s: status %q is not final: %w", r.ID, r.Status, ErrInvalid)
	}
	updated := normTime(r.UpdatedAt)
	if updated.IsZero() {
		updated = now()
	}
	tools, messages, metrics, err := runJSON(r)
	if err != nil {
		return fmt.Errorf("store: finishing run %s: %w", r.ID, err)
	}
	refs, err := jsonArg(orEmptyRefs(r.References))
	if err != nil {
		return fmt.Errorf("store: finishing run %s: encoding references: %w", r.ID, err)
	}
	reasoning, err := jsonArg(orEmptySteps(r.ReasoningSteps))
	if err != nil {
		return fmt.Errorf("store: finishing run %s: encoding reasoning steps: %w", r.ID, err)
	}
	ts := db.timeArg(updated)
	// The latency of sqlFinishRun and sqlFinishRunPostgres, and the created_at
	// it was computed from.
	var created, latency any
	if c := normTime(r.CreatedAt); !c.IsZero() {
		created, latency = db.timeArg(c), latencyUS(c, updated)
	}
	// The input recorded at start stays unless the run rewrote it ($15 NULL).
	var input any
	if r.InputRewritten {
		input = text(r.Input)
	}
	args := []any{text(r.Content), string(r.Status), text(r.Error), tools, messages, metrics, r.Model, r.Provider, ts,
		refs, created, latency, r.ID, r.Partial, input, int64(r.Metrics.Cost), int64(r.Metrics.TotalTokens), r.Metrics.CostUnknown, reasoning,
		session.EstimateTokens(r.Messages)}
	switch {
	case db.dialect == DialectPostgres && len(events) > 0:
		// Still one statement, the batch in the same CTE.
		first, last, data, err2 := encodeEvents(events)
		if err2 != nil {
			return fmt.Errorf("store: finishing run %s: %w", r.ID, err2)
		}
		var n int
		args = append(args, first, last, data)
		if err = db.w.QueryRowContext(ctx, sqlFinishRunWithEventsPostgres, args...).Scan(&n); err == nil && n == 0 {
			err = ErrNotFound
		}
	case db.dialect == DialectPostgres:
		// One statement, one round trip: see sqlFinishRunPostgres.
		var n int
		if err = db.st.finishRun.QueryRowContext(ctx, args...).Scan(&n); err == nil && n == 0 {
			err = ErrNotFound
		}
	default:
		var first, last int
		var data string
		if len(events) > 0 {
			if first, last, data, err = encodeEvents(events); err != nil {
				return fmt.Errorf("store: finishing run %s: %w", r.ID, err)
			}
		}
		err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			res, err := tx.StmtContext(ctx, db.st.finishRun).ExecContext(ctx, args...)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return ErrNotFound
			}
			// After the update, which found the run: the events' foreign
			// key holds.
			if len(events) > 0 {
				if _, err := tx.StmtContext(ctx, db.st.insertEvents).ExecContext(ctx, r.ID, first, last, data); err != nil {
					return err
				}
			}
			_, err = tx.StmtContext(ctx, db.st.touchSession).ExecContext(ctx, ts, r.ID)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("store: finishing run %s: %w", r.ID, err)
	}
	r.UpdatedAt = updated
	return nil
}

// GetRun returns run id if f lets the caller see it.
func (db *DB) GetRun(ctx context.Context, id string, f Filter) (*Run, error) {
	r, err := scanRun(db.st.getRun.QueryRowContext(ctx, id, f.UserID))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: getting run %s: %w", id, err)
	}
	return &r, nil
}

// ListRuns returns the runs of a session, oldest first, member runs of teams
// included. It returns an error wrapping ErrNotFound when the session does not
// exist or f hides it.
func (db *DB) ListRuns(ctx context.Context, sessionID string, f Filter) ([]Run, error) {
	runs, err := db.listRuns(ctx, sessionID, f)
	if err != nil {
		return nil, fmt.Errorf("store: listing runs of session %s: %w", sessionID, err)
	}
	return runs, nil
}

func (db *DB) listRuns(ctx context.Context, sessionID string, f Filter) ([]Run, error) {
	runs, err := db.scanRuns(ctx, db.st.listRuns, sessionID, f.UserID)
	if err == nil && len(runs) == 0 {
		// No rows: an empty session, or none visible. Only this rare case
		// pays for a second query.
		err = db.visible(ctx, sessionID, f)
	}
	return runs, err
}

// visible returns ErrNotFound unless the session exists and f shows it.
func (db *DB) visible(ctx context.Context, sessionID string, f Filter) error {
	var one int
	err := db.st.sessionVisible.QueryRowContext(ctx, sessionID, f.UserID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// HasFinishedRun reports whether session sessionID has a top-level run that
// finished (completed, failed or cancelled) and f lets the caller see it.
// AgentOS stores a session when its first run ends, so AgentOS clients
// expect no session before that: the API answers them 404 until this is
// true. An unknown or hidden session has none.
func (db *DB) HasFinishedRun(ctx context.Context, sessionID string, f Filter) (bool, error) {
	var one int
	err := db.st.finishedRun.QueryRowContext(ctx, sessionID, f.UserID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: looking for a finished run of session %s: %w", sessionID, err)
	}
	return true, nil
}

// LatestRuns returns the latest n top-level runs of a session with their
// members' runs, oldest first as ListRuns orders them, and how many older
// top-level runs it left out: pages of long sessions read what they show,
// not the whole session. It returns an error wrapping ErrNotFound when the
// session does not exist or f hides it.
func (db *DB) LatestRuns(ctx context.Context, sessionID string, f Filter, n int) ([]Run, int, error) {
	if n <= 0 {
		return nil, 0, fmt.Errorf("store: LatestRuns needs n > 0, not %d: %w", n, ErrInvalid)
	}
	runs, err := db.scanRuns(ctx, db.st.latestRuns, sessionID, f.UserID, n)
	if err == nil && len(runs) == 0 {
		err = db.visible(ctx, sessionID, f) // empty, hidden or unknown
	}
	if err != nil {
		return nil, 0, fmt.Errorf("store: listing runs of session %s: %w", sessionID, err)
	}
	// Runs created at the n-th newest one's instant may add a top-level
	// run too many, and members of older runs still going then come along:
	// keep the latest n top-level runs and their members only.
	top := 0
	parent := make(map[string]string, len(runs))
	for _, r := range runs {
		parent[r.ID] = r.ParentRunID
		if r.ParentRunID == "" {
			top++
		}
	}
	skip := max(top-n, 0)
	kept := make(map[string]bool, min(top, n))
	for _, r := range runs {
		if r.ParentRunID == "" {
			if skip > 0 {
				skip--
			} else {
				kept[r.ID] = true
			}
		}
	}
	// A member run belongs to the top-level run at the end of its chain of
	// parents (members of members), which is a few links long.
	root := func(id string) string {
		for hops := 0; parent[id] != "" && hops < len(runs); hops++ {
			id = parent[id]
		}
		return id
	}
	out := runs[:0]
	for _, r := range runs {
		if kept[root(r.ID)] {
			out = append(out, r)
		}
	}
	if top < n {
		return out, 0, nil // every top-level run is here
	}
	var total int
	if err := db.st.countTopLevelRuns.QueryRowContext(ctx, sessionID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: counting runs of session %s: %w", sessionID, err)
	}
	return out, max(total-n, 0), nil
}

// runsPageSQL reads a page of a session's turns: the top-level runs from
// the offset-th newest ($3 of them), then their members and members'
// members. A member starts while its parent runs, so the (session_id,
// created_at) index finds a parent's members in the range of its own run
// (up to farFuture, the dialect's latest time, while it is still running)
// without reading the rest of the session. The CROSS JOIN keeps SQLite from
// putting runs in the outer loop, which read the whole session for each
// member level (over a second for 20,000 runs).
func runsPageSQL(farFuture string) string {
	hi := func(t string) string {
		return `CASE WHEN ` + t + `status = 'RUNNING' THEN ` + farFuture + ` ELSE ` + t + `updated_at END`
	}
	return `WITH RECURSIVE page(id, created_at, hi) AS (
			SELECT id, created_at, hi FROM (SELECT id, created_at, ` + hi("") + ` hi FROM runs
				WHERE session_id = $1 AND parent_run_id = '' ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3) top
			UNION ALL
			SELECT r.id, r.created_at, ` + hi("r.") + ` FROM page p CROSS JOIN runs r
				WHERE r.parent_run_id = p.id AND r.session_id = $1 AND r.created_at >= p.created_at AND r.created_at <= p.hi)
		SELECT ` + runSelectColumns + ` FROM runs
		WHERE id IN (SELECT id FROM page) AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $1 AND ($4 = '' OR s.user_id = $4))
		ORDER BY created_at, id`
}

// RunsPage returns a page of a session's turns for clients that page
// through long sessions: the top-level runs from the offset-th newest on,
// at most limit of them, with their members' runs (members of members
// included), oldest first as ListRuns orders them, and the session's number
// of top-level runs. Only the page's rows are read, whatever the session's
// length. It returns an error wrapping ErrNotFound when the session does not
// exist or f hides it.
func (db *DB) RunsPage(ctx context.Context, sessionID string, f Filter, limit, offset int) ([]Run, int, error) {
	if limit <= 0 || offset < 0 {
		return nil, 0, fmt.Errorf("store: RunsPage needs limit > 0 and offset >= 0, not %d and %d: %w", limit, offset, ErrInvalid)
	}
	runs, err := db.scanRuns(ctx, db.st.runsPage, sessionID, limit, offset, f.UserID)
	if err == nil && len(runs) == 0 {
		err = db.visible(ctx, sessionID, f) // empty, past the end, hidden or unknown
	}
	if err != nil {
		return nil, 0, fmt.Errorf("store: listing runs of session %s: %w", sessionID, err)
	}
	var total int
	if err := db.st.countTopLevelRuns.QueryRowContext(ctx, sessionID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: counting runs of session %s: %w", sessionID, err)
	}
	return runs, total, nil
}

// History returns the messages of the last n COMPLETED runs of the session,
// one slice per run, oldest run first, for the next turn's context; the caller
// trims it to a token budget by whole runs. Runs of team members are not part
// of it. An unknown session has no history.
func (db *DB) History(ctx context.Context, sessionID string, n int) ([][]model.Message, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := db.st.history.QueryContext(ctx, sessionID, n)
	if err != nil {
		return nil, fmt.Errorf("store: reading history of session %s: %w", sessionID, err)
	}
	defer rows.Close()
	var turns [][]model.Message
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("store: reading history of session %s: %w", sessionID, err)
		}
		var msgs []model.Message
		if err := decodeJSON(raw, &msgs); err != nil {
			return nil, fmt.Errorf("store: decoding history of session %s: %w", sessionID, err)
		}
		turns = append(turns, msgs)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading history of session %s: %w", sessionID, err)
	}
	slices.Reverse(turns)
	return turns, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (Run, error) {
	var (
		r                              Run
		status                         string
		tools, messages, metrics, refs []byte
		reasoning                      []byte
	)
	err := sc.Scan(&r.ID, &r.SessionID, &r.ParentRunID, &r.ComponentID, &r.Type, &r.UserID, &r.Input, &r.Content,
		&status, &r.Error, &tools, &messages, &metrics, &r.Model, &r.Provider, &r.SpecVersion,
		timeDest{&r.CreatedAt}, timeDest{&r.UpdatedAt}, &refs, &r.Partial, &r.Trigger, &reasoning)
	if err != nil {
		return Run{}, err
	}
	r.Status = event.Status(status)
	if err := decodeJSON(tools, &r.Tools); err != nil {
		return Run{}, fmt.Errorf("decoding tools of run %s: %w", r.ID, err)
	}
	if err := decodeJSON(messages, &r.Messages); err != nil {
		return Run{}, fmt.Errorf("decoding messages of run %s: %w", r.ID, err)
	}
	if err := decodeJSON(metrics, &r.Metrics); err != nil {
		return Run{}, fmt.Errorf("decoding metrics of run %s: %w", r.ID, err)
	}
	if err := decodeJSON(refs, &r.References); err != nil {
		return Run{}, fmt.Errorf("decoding references of run %s: %w", r.ID, err)
	}
	if len(r.References) == 0 {
		r.References = nil
	}
	if err := decodeJSON(reasoning, &r.ReasoningSteps); err != nil {
		return Run{}, fmt.Errorf("decoding reasoning steps of run %s: %w", r.ID, err)
	}
	if len(r.ReasoningSteps) == 0 {
		r.ReasoningSteps = nil
	}
	return r, nil
}

func orEmptyRefs(r []event.Reference) []event.Reference {
	if r == nil {
		return []event.Reference{}
	}
	return r
}

// orEmptySteps returns s, or an empty slice for nil, so the column holds [].
func orEmptySteps(s []event.Thought) []event.Thought {
	if s == nil {
		return []event.Thought{}
	}
	return s
}
