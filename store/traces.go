package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/troupehq/troupe/telemetry"
)

// Traces returns the span store (telemetry.Sink and telemetry.Reader) of this
// database: the default trace sink.
func (db *DB) Traces() *Traces { return &Traces{db: db} }

// Traces stores run traces in the store's database, one row per trace in the
// traces table, and answers the trace API from it.
//
// # One row per trace
//
// A row holds the trace's spans as a JSON array, next to the summary that
// trace lists show and filter by (the root span's name, status, times and
// ids, the input, the span and error counts). A row per span cost the run
// path too much: with a table row, a primary-key entry and parameters to
// bind for every span, writing traces took ~15% of the throughput of a
// server whose model answers at once; a row per trace, written once, keeps
// the cost to one insert and the list indexes. The API never reads less than
// a whole trace, so nothing needs a span on its own.
//
// # The root of a trace
//
// The summary comes from the trace's root: the one span of its stored spans
// that comes first by:
//
//  1. carrying telemetry.RootAttribute ("troupe.root") = "true", which
//     telemetry.Trace sets on the span of the run it traces;
//  2. otherwise, having no parent (an empty parent_span_id) or a parent that is
//     not a stored span of the same trace: a run continuing a caller's
//     traceparent has the caller's span as parent, and that span lives in
//     the caller's own store (or arrives later, see below);
//  3. otherwise anything (only a cycle of parent ids ends up here);
//
// ties going to the earliest start, then to the smallest span id. So every
// trace has exactly one root, the same whichever way batches split it and in
// whatever order they arrive: when spans of a trace already stored arrive
// (a batch split by the recorder, or a caller's spans written after its
// callee's by another server sharing the database), Write merges them into
// the row and applies the rule again.
//
// The summary's filters (run, session, user, agent, team, status, time range)
// apply to the root span; total_spans counts every span of the trace, and
// error_count those with status ERROR, the root included.
type Traces struct{ db *DB }

var (
	_ telemetry.Sink   = (*Traces)(nil)
	_ telemetry.Reader = (*Traces)(nil)
)

// traceColumnNames are the columns of a traces row, in the order of
// traceRow.args; trace_id first.
var traceColumnNames = []string{"trace_id", "root_span_id", "name", "status", "start_ns", "start_time", "end_ns", "duration_ns",
	"run_id", "session_id", "user_id", "agent_id", "team_id", "input", "total_spans", "error_count", "spans"}

var (
	nTraceArgs   = len(traceColumnNames)
	traceColumns = strings.Join(traceColumnNames, ", ")
	// traceUpdate sets every column but trace_id ($1) to its argument.
	traceUpdate = func() string {
		set := make([]string, 0, nTraceArgs-1)
		for i, c := range traceColumnNames[1:] {
			set = append(set, c+" = $"+strconv.Itoa(i+2))
		}
		return `UPDATE traces SET ` + strings.Join(set, ", ") + ` WHERE trace_id = $1`
	}()
)

// traceChunk bounds the rows of one PostgreSQL INSERT and the advisory locks
// of one statement, well below its limit of 65535 bound parameters.
const traceChunk = 500

// traceLockSpace is the first key of the PostgreSQL advisory locks that
// serialize writes to one trace ("trac" in ASCII); the second is a hash of
// the trace id.
const traceLockSpace = 0x74726163

// nsOf and timeOfNS convert span times to the stored nanoseconds and back; the
// zero time is stored as 0. Times come back in UTC.
func nsOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeOfNS(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// storedSpan is a span as its trace's row keeps it, in the spans JSON array.
// Attributes has no omitempty: a nil map is stored as null and an empty one
// as {}, so each reads back as it was written.
type storedSpan struct {
	SpanID        string            `json:"span_id"`
	ParentID      string            `json:"parent_span_id,omitempty"`
	Name          string            `json:"name,omitempty"`
	Kind          string            `json:"kind,omitempty"`
	StartNS       int64             `json:"start_ns"`
	EndNS         int64             `json:"end_ns"`
	Status        string            `json:"status,omitempty"`
	StatusMessage string            `json:"status_message,omitempty"`
	RunID         string            `json:"run_id,omitempty"`
	SessionID     string            `json:"session_id,omitempty"`
	UserID        string            `json:"user_id,omitempty"`
	AgentID       string            `json:"agent_id,omitempty"`
	TeamID        string            `json:"team_id,omitempty"`
	InputTokens   int64             `json:"input_tokens,omitempty"`
	OutputTokens  int64             `json:"output_tokens,omitempty"`
	Attributes    map[string]string `json:"attributes"`
}

// storedOf cleans the text of s as with runs (see text).
func storedOf(s *telemetry.Span, spanID string) storedSpan {
	attrs := s.Attributes
	if !cleanText(attrs) {
		clean := make(map[string]string, len(attrs))
		for k, v := range attrs {
			clean[text(k)] = text(v)
		}
		attrs = clean
	}
	return storedSpan{
		SpanID: spanID, ParentID: text(s.ParentID), Name: text(s.Name), Kind: text(s.Kind),
		StartNS: nsOf(s.Start), EndNS: nsOf(s.End), Status: text(s.Status), StatusMessage: text(s.StatusMessage),
		RunID: text(s.RunID), SessionID: text(s.SessionID), UserID: text(s.UserID), AgentID: text(s.AgentID), TeamID: text(s.TeamID),
		InputTokens: int64(s.InputTokens), OutputTokens: int64(s.OutputTokens), Attributes: attrs,
	}
}

// cleanText reports whether text would leave every key and value of attrs
// as it is, so that the map can be stored without a copy.
func cleanText(attrs map[string]string) bool {
	for k, v := range attrs {
		if text(k) != k || text(v) != v {
			return false
		}
	}
	return true
}

func (s *storedSpan) span(traceID string) telemetry.Span {
	return telemetry.Span{
		TraceID: traceID, SpanID: s.SpanID, ParentID: s.ParentID, Name: s.Name, Kind: s.Kind,
		Start: timeOfNS(s.StartNS), End: timeOfNS(s.EndNS), Status: s.Status, StatusMessage: s.StatusMessage,
		RunID: s.RunID, SessionID: s.SessionID, UserID: s.UserID, AgentID: s.AgentID, TeamID: s.TeamID,
		InputTokens: int(s.InputTokens), OutputTokens: int(s.OutputTokens), Attributes: s.Attributes,
	}
}

// traceRow is one trace being written: its spans, without two of the same
// id, and once rowArgs has run, ordered by start then span id, and the row's
// column values.
type traceRow struct {
	id    string
	spans []storedSpan
	args  []any // in traceColumns order
}

// byStart orders spans by start, then span id: as they are stored, and as
// GetTrace returns them.
func byStart(a, b storedSpan) int {
	return cmp.Or(cmp.Compare(a.StartNS, b.StartNS), strings.Compare(a.SpanID, b.SpanID))
}

// add appends the spans whose ids the row does not hold yet (the first
// version of a span wins, as a retried batch must not change it) and
// reports whether any was new.
func (r *traceRow) add(spans []storedSpan) bool {
	added := false
	if len(r.spans)+len(spans) <= 32 {
		// A trace's few spans are compared faster than hashed.
		for _, s := range spans {
			if !slices.ContainsFunc(r.spans, func(o storedSpan) bool { return o.SpanID == s.SpanID }) {
				r.spans = append(r.spans, s)
				added = true
			}
		}
		return added
	}
	known := make(map[string]bool, len(r.spans)+len(spans))
	for i := range r.spans {
		known[r.spans[i].SpanID] = true
	}
	for _, s := range spans {
		if !known[s.SpanID] {
			known[s.SpanID] = true
			r.spans = append(r.spans, s)
			added = true
		}
	}
	return added
}

// encodeBuffers holds the buffers rowArgs encodes into, so that each batch
// does not grow its own.
var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// rowArgs sets the rows' column values. The spans of every row are encoded
// into one buffer and one string, which each row's spans column is a slice
// of: encoding the rows one by one allocated more than the rest of a run's
// tracing.
func rowArgs(db *DB, rows []*traceRow) error {
	buf := encodeBuffers.Get().(*bytes.Buffer)
	n := 0
	for _, r := range rows {
		n += len(r.spans)
	}
	buf.Grow(n * 512) // about a span's JSON
	defer func() {
		if buf.Cap() <= 4<<20 { // a huge batch's buffer is not worth keeping
			buf.Reset()
			encodeBuffers.Put(buf)
		}
	}()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	ends := make([]int, len(rows))
	for i, r := range rows {
		slices.SortFunc(r.spans, byStart)
		if err := enc.Encode(r.spans); err != nil {
			return fmt.Errorf("store: encoding the spans of trace %s: %w", r.id, err)
		}
		buf.Truncate(buf.Len() - 1) // the newline Encode adds
		ends[i] = buf.Len()
	}
	all := buf.String()
	start := 0
	for i, r := range rows {
		root := chooseRoot(r.spans)
		failed := 0
		for i := range r.spans {
			if r.spans[i].Status == telemetry.StatusError {
				failed++
			}
		}
		var duration int64
		if root.StartNS != 0 && root.EndNS != 0 {
			duration = root.EndNS - root.StartNS
		}
		r.args = []any{r.id, root.SpanID, root.Name, root.Status, root.StartNS, db.timeArg(normTime(timeOfNS(root.StartNS))),
			root.EndNS, duration, root.RunID, root.SessionID, root.UserID, root.AgentID, root.TeamID,
			root.Attributes[telemetry.InputAttribute], len(r.spans), failed, all[start:ends[i]]}
		start = ends[i]
	}
	return nil
}

// chooseRoot applies the root rule (see Traces) to the spans of one trace,
// sorted by start then span id.
func chooseRoot(spans []storedSpan) *storedSpan {
	known := make(map[string]bool, len(spans))
	for i := range spans {
		known[spans[i].SpanID] = true
	}
	rank := func(s *storedSpan) int {
		switch {
		case s.Attributes[telemetry.RootAttribute] == "true":
			return 0
		case s.ParentID == "" || !known[s.ParentID]:
			return 1
		default:
			return 2
		}
	}
	// The spans are sorted, so the first of the best rank wins the ties.
	var best *storedSpan
	bestRank := 3
	for i := range spans {
		if r := rank(&spans[i]); r < bestRank {
			best, bestRank = &spans[i], r
		}
	}
	return best
}

// Write implements telemetry.Sink: it stores the spans in one transaction. A
// span already stored (same trace and span id) is kept as it is, so writing a
// batch again is harmless. Spans without a trace or span id cannot be stored
// nor found again: they are dropped, and logged, rather than failing the rest
// of the batch.
//
// Text is stored as with runs (see text): NUL bytes removed and invalid
// UTF-8 replaced. Times must lie between the years 1678 and 2261, where Unix
// nanoseconds fit in 64 bits.
func (t *Traces) Write(ctx context.Context, spans []telemetry.Span) error {
	db := t.db
	// Grouped by trace in two passes, so that every trace's spans share one
	// array: this runs for every span of every run.
	index := make(map[string]int, len(spans)/2)
	var rows []traceRow
	var counts []int
	dropped := 0
	for i := range spans {
		traceID := spans[i].TraceID
		if text(traceID) == "" || text(spans[i].SpanID) == "" {
			dropped++
			continue
		}
		n, ok := index[traceID]
		if !ok {
			n = len(rows)
			index[traceID] = n
			rows = append(rows, traceRow{id: text(traceID)})
			counts = append(counts, 0)
		}
		counts[n]++
	}
	if dropped > 0 {
		db.log.Warn("dropping spans without a trace or span id", "spans", dropped)
	}
	if len(rows) == 0 {
		return nil
	}
	slab := make([]storedSpan, len(spans)-dropped)
	for i := range rows {
		rows[i].spans, slab = slab[:0:counts[i]], slab[counts[i]:]
	}
	for i := range spans {
		s := &spans[i]
		n, ok := index[s.TraceID]
		if spanID := text(s.SpanID); ok && spanID != "" {
			rows[n].spans = append(rows[n].spans, storedOf(s, spanID))
		}
	}
	// Encoded outside the write transaction, which holds up every other
	// writer of the database: most traces are new.
	batch := make([]*traceRow, len(rows))
	for i := range rows {
		r := &rows[i]
		// Deduplicated in place: add writes no further than it has read.
		spans := r.spans
		r.spans = spans[:0]
		r.add(spans)
		batch[i] = r
	}
	if err := rowArgs(db, batch); err != nil {
		return err
	}
	// Sorted, so that PostgreSQL writers take row locks in one order.
	slices.SortFunc(batch, func(a, b *traceRow) int { return strings.Compare(a.id, b.id) })
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if db.dialect == DialectPostgres {
			if err := lockTraces(ctx, tx, batch); err != nil {
				return fmt.Errorf("locking traces: %w", err)
			}
		}
		stored, err := insertTraces(ctx, tx, db.dialect, batch)
		if err != nil {
			return err
		}
		if len(stored) == 0 {
			return nil
		}
		return mergeTraces(ctx, tx, db, stored)
	})
	if err != nil {
		return fmt.Errorf("store: writing spans: %w", err)
	}
	return nil
}

// insertTraces inserts the traces not stored yet and returns the others.
// SQLite runs in-process, so one prepared statement run per trace costs no
// round trips; PostgreSQL takes chunks of rows per statement.
func insertTraces(ctx context.Context, tx *sql.Tx, dialect string, batch []*traceRow) ([]*traceRow, error) {
	const conflict = ` ON CONFLICT (trace_id) DO NOTHING`
	var stored []*traceRow
	if dialect == DialectSQLite {
		// Anonymous ? parameters: the driver matches each $N parameter to
		// its argument by formatting and comparing names, quadratic in the
		// columns.
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO traces (`+traceColumns+`) VALUES (?`+strings.Repeat(", ?", nTraceArgs-1)+`)`+conflict)
		if err != nil {
			return nil, err
		}
		defer stmt.Close()
		for _, p := range batch {
			res, err := stmt.ExecContext(ctx, p.args...)
			if err != nil {
				return nil, err
			}
			if n, err := res.RowsAffected(); err != nil {
				return nil, err
			} else if n == 0 {
				stored = append(stored, p)
			}
		}
		return stored, nil
	}
	for start := 0; start < len(batch); start += traceChunk {
		chunk := batch[start:min(start+traceChunk, len(batch))]
		var q strings.Builder
		q.WriteString(`INSERT INTO traces (` + traceColumns + `) VALUES `)
		args := make([]any, 0, len(chunk)*nTraceArgs)
		for i, p := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			placeholders(&q, len(args), nTraceArgs)
			args = append(args, p.args...)
		}
		rows, err := tx.QueryContext(ctx, q.String()+conflict+` RETURNING trace_id`, args...)
		if err != nil {
			return nil, err
		}
		inserted := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			inserted[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for _, p := range chunk {
			if !inserted[p.id] {
				stored = append(stored, p)
			}
		}
	}
	return stored, nil
}

// mergeTraces adds the batch's spans to traces already stored and rewrites
// their rows when any span was new. The ids travel as one JSON array,
// whatever their number.
func mergeTraces(ctx context.Context, tx *sql.Tx, db *DB, batch []*traceRow) error {
	ids := make([]string, len(batch))
	for i, p := range batch {
		ids[i] = p.id
	}
	list, err := jsonArg(ids)
	if err != nil {
		return err
	}
	q := `SELECT trace_id, spans FROM traces WHERE trace_id IN (SELECT value FROM json_each($1))`
	if db.dialect == DialectPostgres {
		q = `SELECT trace_id, spans FROM traces WHERE trace_id IN (SELECT json_array_elements_text($1::json))`
	}
	rows, err := tx.QueryContext(ctx, q, list)
	if err != nil {
		return fmt.Errorf("reading stored traces: %w", err)
	}
	stored := map[string][]storedSpan{}
	for rows.Next() {
		var id string
		var raw []byte
		var spans []storedSpan
		if err := rows.Scan(&id, &raw); err == nil {
			err = decodeJSON(raw, &spans)
		}
		if err != nil {
			rows.Close()
			return fmt.Errorf("reading stored traces: %w", err)
		}
		stored[id] = spans
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading stored traces: %w", err)
	}
	for _, p := range batch {
		// The insert found the row, and the trace lock (SQLite: the one
		// writer) keeps anyone else from changing it before this update.
		row := traceRow{id: p.id, spans: stored[p.id]}
		if !row.add(p.spans) {
			continue // every span was stored already
		}
		if err := rowArgs(db, []*traceRow{&row}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, traceUpdate, row.args...); err != nil {
			return fmt.Errorf("updating trace %s: %w", p.id, err)
		}
	}
	return nil
}

// lockTraces takes PostgreSQL advisory locks on the traces for the rest of tx,
// so that two processes writing spans of one trace (a caller and a remote
// agent it called) merge them one after the other, each seeing the other's
// spans. Keys are taken in order, so writers never deadlock; a hash
// collision only serializes two unrelated traces.
func lockTraces(ctx context.Context, tx *sql.Tx, batch []*traceRow) error {
	keys := make([]int32, 0, len(batch))
	for _, p := range batch {
		h := fnv.New32a()
		_, _ = h.Write([]byte(p.id))
		keys = append(keys, int32(h.Sum32()))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for start := 0; start < len(keys); start += traceChunk {
		chunk := keys[start:min(start+traceChunk, len(keys))]
		var q strings.Builder
		q.WriteString(`SELECT pg_advisory_xact_lock(` + strconv.Itoa(traceLockSpace) + `, v.k) FROM (VALUES `)
		args := make([]any, len(chunk))
		for i, k := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			fmt.Fprintf(&q, "($%d::integer)", i+1)
			args[i] = k
		}
		// PostgreSQL evaluates volatile output functions after sorting.
		q.WriteString(`) AS v(k) ORDER BY v.k`)
		rows, err := tx.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// placeholders writes "($n+1, …, $n+count)".
func placeholders(q *strings.Builder, n, count int) {
	q.WriteByte('(')
	for i := range count {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteByte('$')
		q.WriteString(strconv.Itoa(n + i + 1))
	}
	q.WriteByte(')')
}

// GetTrace implements telemetry.Reader: every span of the trace, ordered by
// start time, then span id; an empty slice when there is none. Times come
// back in UTC, to the nanosecond.
func (t *Traces) GetTrace(ctx context.Context, traceID string) ([]telemetry.Span, error) {
	var raw []byte
	err := t.db.r.QueryRowContext(ctx, `SELECT spans FROM traces WHERE trace_id = $1`, traceID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return []telemetry.Span{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading trace: %w", err)
	}
	var stored []storedSpan
	if err := decodeJSON(raw, &stored); err != nil {
		return nil, fmt.Errorf("store: decoding trace %s: %w", traceID, err)
	}
	out := make([]telemetry.Span, len(stored))
	for i := range stored {
		out[i] = stored[i].span(traceID)
	}
	return out, nil
}

// ListTraces implements telemetry.Reader: summaries of the traces whose root
// (see Traces) matches every filter set in q, newest root first (ties by trace
// id, descending), and how many traces match in all. StartTime and EndTime
// bound the root's start, both inclusive. Limit defaults to DefaultLimit and
// is at most MaxLimit; Page counts from 1.
func (t *Traces) ListTraces(ctx context.Context, q telemetry.TraceQuery) ([]telemetry.TraceSummary, int, error) {
	db := t.db
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	page := max(q.Page, 1)

	filter, args := traceFilter(q)
	out := []telemetry.TraceSummary{}
	if page-1 > (math.MaxInt-limit)/limit {
		// No database holds that many traces; OFFSET would overflow.
		total, err := t.countTraces(ctx, filter, args)
		return out, total, err
	}
	offset := (page - 1) * limit

	rows, err := db.r.QueryContext(ctx, traceListSQL(filter, limit, offset), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: listing traces: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s telemetry.TraceSummary
		var startNS, endNS, durationNS int64
		if err := rows.Scan(&s.TraceID, &s.Name, &s.Status, &startNS, &endNS, &durationNS, &s.RunID, &s.SessionID, &s.UserID,
			&s.AgentID, &s.TeamID, &s.Input, &s.TotalSpans, &s.ErrorCount); err != nil {
			return nil, 0, fmt.Errorf("store: listing traces: %w", err)
		}
		s.StartTime, s.EndTime, s.Duration = timeOfNS(startNS), timeOfNS(endNS), time.Duration(durationNS)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: listing traces: %w", err)
	}
	rows.Close()

	// A page that is neither full nor past the end tells the total itself.
	if len(out) > 0 && len(out) < limit || page == 1 && len(out) == 0 {
		return out, offset + len(out), nil
	}
	total, err := t.countTraces(ctx, filter, args)
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// traceFilter returns the WHERE clause of the traces that q selects, and its
// arguments.
func traceFilter(q telemetry.TraceQuery) (string, []any) {
	where := []string{"1 = 1"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, f := range []struct {
		col, v  string
		partial bool // its index holds non-empty values only
	}{
		{"run_id", q.RunID, true}, {"session_id", q.SessionID, true}, {"user_id", q.UserID, true},
		{"agent_id", q.AgentID, true}, {"team_id", q.TeamID, true}, {"status", q.Status, false},
	} {
		if f.v != "" {
			where = append(where, f.col+" = "+arg(f.v))
			if f.partial {
				// Spelled out, so that the planners see the partial index
				// applies: they cannot know a parameter is not ''.
				where = append(where, f.col+" <> ''")
			}
		}
	}
	if !q.StartTime.IsZero() {
		where = append(where, "start_ns >= "+arg(q.StartTime.UnixNano()))
	}
	if !q.EndTime.IsZero() {
		where = append(where, "start_ns <= "+arg(q.EndTime.UnixNano()))
	}
	return strings.Join(where, " AND "), args
}

// traceListSQL selects a page of the summaries that filter selects. LIMIT
// and OFFSET are literals: SQLite prepares a statement again when it binds a
// LIMIT parameter, whose value can change the plan.
func traceListSQL(filter string, limit, offset int) string {
	return `SELECT trace_id, name, status, start_ns, end_ns, duration_ns,
		run_id, session_id, user_id, agent_id, team_id, input, total_spans, error_count
		FROM traces WHERE ` + filter + `
		ORDER BY start_ns DESC, trace_id DESC LIMIT ` + strconv.Itoa(limit) + ` OFFSET ` + strconv.Itoa(offset)
}

func (t *Traces) countTraces(ctx context.Context, filter string, args []any) (int, error) {
	var n int
	if err := t.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM traces WHERE `+filter, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: counting traces: %w", err)
	}
	return n, nil
}
