package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ActivityBucket summarises the top-level runs started in one time interval.
type ActivityBucket struct {
	Start    time.Time
	Runs     int // runs started in the interval
	Errors   int // of those, status ERROR
	Finished int // of those, in a terminal status
	// The mean and maximum latency of the finished runs: updated_at minus
	// created_at, or zero when a clock went backwards.
	AvgLatency time.Duration
	MaxLatency time.Duration
}

// Bounds of RecentRuns and RunActivity.
const (
	defaultRecentRuns  = 10
	maxActivityBuckets = 240
	// maxActivityWindow, 1,000 years of 365.25 days in microseconds, keeps
	// RunActivity's arithmetic (microseconds times buckets) within int64.
	maxActivityWindow = 365250 * 24 * 3600 * 1_000_000
)

// recentRunColumns are runSelectColumns with NULL for tools, messages,
// refs and reasoning, which can be large and which an overview does not show.
const recentRunColumns = `id, session_id, parent_run_id, component_id, type, user_id, input, content, status, error,
	NULL, NULL, metrics, model, provider, spec_version, created_at, updated_at, NULL, partial, trigger_name, NULL`

// RecentRuns reads the finished runs and the running ones apart, each through
// its partial index (migrations 0004 and 0001), and merges them. Comparing
// parent_run_id with a literal, not a parameter, lets both dialects use the
// partial index of finished runs, which also gives the order. The user, when
// there is one, is compared with the empty string in SQL, so that one
// statement serves both.
const (
	sqlRecentFinishedRuns = `SELECT ` + recentRunColumns + ` FROM runs
		WHERE parent_run_id = '' AND latency_us IS NOT NULL AND ($1 = '' OR user_id = $1)
		ORDER BY created_at DESC, id DESC LIMIT $2`
	sqlRecentRunningRuns = `SELECT ` + recentRunColumns + ` FROM runs
		WHERE status = 'RUNNING' AND parent_run_id = '' AND ($1 = '' OR user_id = $1)
		ORDER BY created_at DESC, id DESC LIMIT $2`
)

// RecentRuns returns the newest top-level runs (not team members' runs)
// across all sessions that f lets the caller see, newest first, ties broken
// by id (descending). limit defaults to 10 and is capped at MaxLimit.
//
// The runs come without Tools, Messages and References, which can be large
// and which an overview does not show; GetRun returns a whole run.
func (db *DB) RecentRuns(ctx context.Context, limit int, f Filter) ([]Run, error) {
	if limit <= 0 {
		limit = defaultRecentRuns
	}
	limit = min(limit, MaxLimit)
	var runs []Run
	for _, st := range []*sql.Stmt{db.st.recentFinished, db.st.recentRunning} {
		more, err := db.scanRuns(ctx, st, f.UserID, limit)
		if err != nil {
			return nil, fmt.Errorf("store: listing recent runs: %w", err)
		}
		runs = append(runs, more...)
	}
	slices.SortFunc(runs, func(a, b Run) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	if len(runs) > limit {
		runs = runs[:limit]
	}
	return runs, nil
}

func (db *DB) scanRuns(ctx context.Context, st *sql.Stmt, args ...any) ([]Run, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	runs := []Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// The RunActivity statements read the finished top-level runs created in the
// window and return, for each non-empty bucket, an activityRow; the runs
// still RUNNING are counted apart (sqlRunningRuns).
//
// Both take the buckets' bounds from RunActivity, and put a run in bucket i
// when bounds[i] <= created_at < bounds[i+1].
//
// Both read each run's status and latency from the index of finished runs
// (see migration 0004): a run has a latency (latency_us) once it has finished.
//
// PostgreSQL groups the runs by bucket: width_bucket finds a run's by binary
// search over the bounds (in $3, as an array; $1 and $2 are the window).
//
// SQLite would sort every run of the window for a GROUP BY on a computed
// bucket, which costs more than all the rest (7 ms for 10,000 runs with the
// pure-Go driver). Instead it aggregates each bucket with a range scan of the
// index, which needs no sort.
// A scalar subquery returns one value, so each bucket's numbers come as a
// JSON array, and the statement returns them all as one JSON array (null for
// empty buckets): one row to step through instead of one per bucket. json()
// marks the subquery's text as JSON again, since SQLite does not promise to
// keep that mark across a subquery.
//
// $1 holds the n+1 bounds back to back as sqliteTimeFormat text in a BLOB,
// because substr finds an offset in a BLOB directly but counts the characters
// of TEXT from the start, which made 240 buckets cost as much as the runs.
//
// The user, when there is one, is the last parameter: SQLite numbers $N
// parameters in order of first appearance (see the note above sqlInsertRun).
const (
	sqlRunActivityPostgres = `SELECT width_bucket(created_at, $3::timestamptz[]) - 1 AS b,
		COUNT(*), COUNT(*) FILTER (WHERE status = 'ERROR'),
		CAST(COALESCE(SUM(latency_us), 0) AS BIGINT), COALESCE(MAX(latency_us), 0)
	FROM runs
	WHERE parent_run_id = '' AND latency_us IS NOT NULL AND created_at >= $1 AND created_at < $2 %s
	GROUP BY b`

	// %[1]d is the width of a bound, %[2]s the user condition.
	sqlRunActivitySQLite = `WITH RECURSIVE bucket(b, lo, hi) AS (
		SELECT 0, CAST(substr($1, 1, %[1]d) AS TEXT), CAST(substr($1, %[1]d + 1, %[1]d) AS TEXT)
		UNION ALL
		SELECT b + 1, CAST(substr($1, (b + 1) * %[1]d + 1, %[1]d) AS TEXT), CAST(substr($1, (b + 2) * %[1]d + 1, %[1]d) AS TEXT)
		FROM bucket WHERE b + 1 < $2
	)
	SELECT json_group_array(json((
		SELECT CASE WHEN COUNT(*) > 0 THEN json_array(bucket.b, COUNT(*), COUNT(*) FILTER (WHERE status = 'ERROR'),
			SUM(latency_us), MAX(latency_us)) END
		FROM runs
		WHERE parent_run_id = '' AND latency_us IS NOT NULL AND created_at >= bucket.lo AND created_at < bucket.hi %[2]s
	))) FROM bucket`
)

// sqlRunningRuns lists when the top-level runs still RUNNING in a window
// started, through the partial index of running runs (migration 0001).
const sqlRunningRuns = `SELECT created_at FROM runs
	WHERE status = 'RUNNING' AND parent_run_id = '' AND created_at >= $1 AND created_at < $2 AND ($3 = '' OR user_id = $3)`

var (
	sqlRunActivityPostgresAll  = fmt.Sprintf(sqlRunActivityPostgres, "")
	sqlRunActivityPostgresUser = fmt.Sprintf(sqlRunActivityPostgres, "AND user_id = $4")
	sqlRunActivitySQLiteAll    = fmt.Sprintf(sqlRunActivitySQLite, len(sqliteTimeFormat), "")
	sqlRunActivitySQLiteUser   = fmt.Sprintf(sqlRunActivitySQLite, len(sqliteTimeFormat), "AND user_id = $3")
)

// activityRow is what the RunActivity statements return for a bucket: its
// index, finished runs, errors, and the sum and maximum of their latencies in
// microseconds.
type activityRow [5]int64

// RunActivity splits [from, to) into buckets equal intervals (buckets is
// clamped to 1..240) and summarises the top-level runs (not team members'
// runs) that f lets the caller see and that were created in each: one
// ActivityBucket per interval, in time order, empty ones included.
//
// Times count at the store's microsecond precision: from and to are rounded
// up to the microsecond, and bucket i starts at from + i*(to-from)/buckets,
// rounded up to the microsecond as well. The window must be non-empty and at
// most 1,000 years long; otherwise RunActivity returns an error wrapping
// ErrInvalid. Latencies are those of the runs finished at the time of the
// call; runs still RUNNING count in Runs only.
//
// It reads the window from an index, with one range scan per bucket on
// SQLite: 3 to 4 ms for 10,000 runs in the window.
func (db *DB) RunActivity(ctx context.Context, from, to time.Time, buckets int, f Filter) ([]ActivityBucket, error) {
	lo, hi := ceilMicro(from), ceilMicro(to)
	if lo >= hi || hi-lo > maxActivityWindow {
		return nil, fmt.Errorf("store: reading run activity: window [%s, %s) is empty or longer than 1,000 years: %w",
			from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), ErrInvalid)
	}
	n := int64(min(max(buckets, 1), maxActivityBuckets))
	span := hi - lo
	// bounds[i] is the first microsecond of bucket i, lo + i*span/n rounded
	// up; bounds[n] is hi.
	bounds := make([]int64, n+1)
	for i := range bounds {
		bounds[i] = lo + (int64(i)*span+n-1)/n
	}

	var args []any
	if db.dialect == DialectPostgres {
		starts := make([]time.Time, n)
		for i := range starts {
			starts[i] = time.UnixMicro(bounds[i]).UTC()
		}
		args = []any{starts[0], time.UnixMicro(hi).UTC(), starts}
	} else {
		b := make([]byte, 0, len(sqliteTimeFormat)*len(bounds))
		for _, us := range bounds {
			b = time.UnixMicro(us).UTC().AppendFormat(b, sqliteTimeFormat)
		}
		args = []any{b, n}
	}
	st := db.st.runActivity
	if f.UserID != "" {
		st = db.st.runActivityUser
		args = append(args, f.UserID)
	}
	read := db.activityRows
	if db.dialect == DialectSQLite {
		read = db.activityJSON
	}
	rows, err := read(ctx, st, args)
	if err != nil {
		return nil, fmt.Errorf("store: reading run activity: %w", err)
	}

	out := make([]ActivityBucket, n)
	for i := range out {
		out[i].Start = time.UnixMicro(bounds[i]).UTC()
	}
	running, err := db.runningStarts(ctx, time.UnixMicro(lo).UTC(), time.UnixMicro(hi).UTC(), f)
	if err != nil {
		return nil, fmt.Errorf("store: reading run activity: %w", err)
	}
	for _, us := range running {
		// The last bucket starting at or before the run.
		b, _ := slices.BinarySearch(bounds[:n], us+1)
		if b > 0 {
			out[b-1].Runs++
		}
	}
	for _, r := range rows {
		b, finished, errs, sum, maxLatency := r[0], r[1], r[2], r[3], r[4]
		if b < 0 || b >= n {
			return nil, fmt.Errorf("store: reading run activity: bucket %d of %d", b, n)
		}
		a := &out[b]
		a.Runs, a.Errors, a.Finished = a.Runs+int(finished), int(errs), int(finished)
		if finished > 0 {
			// The mean to the nanosecond, without multiplying the sum.
			a.AvgLatency = time.Duration(sum/finished)*time.Microsecond +
				time.Duration(sum%finished)*time.Microsecond/time.Duration(finished)
			a.MaxLatency = time.Duration(maxLatency) * time.Microsecond
		}
	}
	return out, nil
}

// runningStarts returns when the top-level runs still RUNNING in [from, to)
// started, in Unix microseconds.
func (db *DB) runningStarts(ctx context.Context, from, to time.Time, f Filter) ([]int64, error) {
	rows, err := db.st.runningRuns.QueryContext(ctx, db.timeArg(from), db.timeArg(to), f.UserID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var t time.Time
		if err := rows.Scan(timeDest{&t}); err != nil {
			return nil, err
		}
		out = append(out, t.UnixMicro())
	}
	return out, rows.Err()
}

// activityRows reads PostgreSQL's RunActivity statement.
func (db *DB) activityRows(ctx context.Context, st *sql.Stmt, args []any) ([]activityRow, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []activityRow
	for rows.Next() {
		var r activityRow
		if err := rows.Scan(&r[0], &r[1], &r[2], &r[3], &r[4]); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// activityJSON reads SQLite's RunActivity statement.
func (db *DB) activityJSON(ctx context.Context, st *sql.Stmt, args []any) ([]activityRow, error) {
	var raw []byte
	if err := st.QueryRowContext(ctx, args...).Scan(&raw); err != nil {
		return nil, err
	}
	var all []*activityRow // nil for empty buckets
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, err
	}
	out := make([]activityRow, 0, len(all))
	for _, r := range all {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, nil
}

// ceilMicro returns t in Unix microseconds, rounded up: the first instant the
// store can hold that is not before t.
func ceilMicro(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}
