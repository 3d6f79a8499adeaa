package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/troupehq/troupe/telemetry"
)

// Traces returns the span store (telemetry.Sink and telemetry.Reader) of this
// database: the default trace sink.
func (db *DB) Traces() *Traces { return &Traces{db: db} }

// Traces stores the spans of run traces in the store's database, in the spans
// table, and answers the trace API from it.
//
// # The root of a trace
//
// Trace lists show one summary per trace, built from its root span. The root
// is the one span of the trace's stored spans that comes first by:
//
//  1. carrying the attribute RootAttribute ("troupe.root") = "true", which
//     telemetry.Trace sets on the span of the run it traces;
//  2. otherwise, having no parent (an empty parent_span_id) or a parent that is
//     not a stored span of the same trace: a run continuing a caller's
//     traceparent has the caller's span as parent, and that span lives in
//     the caller's own store (or arrives later, see below);
//  3. otherwise anything (only a cycle of parent ids ends up here);
//
// ties going to the earliest start, then to the smallest span id. So every
// trace has exactly one root, the same whichever way batches split it and in
// whatever order they arrive: Write recomputes the rule for each trace it
// touches, over the spans already stored and the new ones, and moves the
// is_root flag when it must (when a trace's caller spans, with an earlier
// root, are stored after its own, for instance).
//
// The summary's filters (run, session, user, agent, team, status, time range)
// apply to the root span; total_spans counts every span of the trace, and
// error_count those with status ERROR, the root included.
type Traces struct{ db *DB }

var (
	_ telemetry.Sink   = (*Traces)(nil)
	_ telemetry.Reader = (*Traces)(nil)
)

// RootAttribute is the span attribute that marks, with the value "true", the
// root span of a trace (see Traces).
const RootAttribute = "troupe.root"

const spanColumns = `trace_id, span_id, parent_span_id, name, kind, start_ns, start_time, end_ns, duration_ns, status, status_message,
	run_id, session_id, user_id, agent_id, team_id, input_tokens, output_tokens, attributes`

// spanReadColumns are what GetTrace reads back: start_time and duration_ns
// only repeat start_ns and end_ns.
const spanReadColumns = `trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status, status_message,
	run_id, session_id, user_id, agent_id, team_id, input_tokens, output_tokens, attributes`

// spanInsertColumns are spanColumns and the two root flags, in the order of
// the arguments Write binds.
const (
	spanInsertColumns = spanColumns + `, marked_root, is_root`
	nSpanInsertArgs   = 21
	isRootArg         = nSpanInsertArgs - 1
)

// spanChunk bounds the rows of one PostgreSQL INSERT and the advisory locks
// of one statement, well below its limit of 65535 bound parameters.
const spanChunk = 500

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

// pendingSpan is a span of a batch, ready to insert but for its is_root.
type pendingSpan struct {
	traceID, spanID, parent string
	startNS                 int64
	marked                  bool
	args                    []any
}

// rootCandidate is a span seen by the root rule.
type rootCandidate struct {
	spanID, parent string
	startNS        int64
	marked         bool
	isRoot         bool         // its stored is_root
	pending        *pendingSpan // nil when already stored
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
	batch := make([]*pendingSpan, 0, len(spans))
	seen := make(map[[2]string]bool, len(spans))
	dropped := 0
	for i := range spans {
		s := &spans[i]
		traceID, spanID := text(s.TraceID), text(s.SpanID)
		if traceID == "" || spanID == "" {
			dropped++
			continue
		}
		if seen[[2]string{traceID, spanID}] {
			continue // as ON CONFLICT DO NOTHING would: the first one wins
		}
		seen[[2]string{traceID, spanID}] = true
		p, err := t.pending(s, traceID, spanID)
		if err != nil {
			return fmt.Errorf("store: encoding span %s/%s: %w", traceID, spanID, err)
		}
		batch = append(batch, p)
	}
	if dropped > 0 {
		db.log.Warn("dropping spans without a trace or span id", "spans", dropped)
	}
	if len(batch) == 0 {
		return nil
	}
	var traceIDs []string
	byTrace := map[string][]*pendingSpan{}
	for _, p := range batch {
		if _, ok := byTrace[p.traceID]; !ok {
			traceIDs = append(traceIDs, p.traceID)
		}
		byTrace[p.traceID] = append(byTrace[p.traceID], p)
	}
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if db.dialect == DialectPostgres {
			if err := lockTraces(ctx, tx, traceIDs); err != nil {
				return fmt.Errorf("locking traces: %w", err)
			}
		}
		stored, err := storedRootCandidates(ctx, tx, db.dialect, traceIDs)
		if err != nil {
			return fmt.Errorf("reading the traces' stored spans: %w", err)
		}
		var insert []*pendingSpan
		type flip struct {
			traceID, spanID string
			isRoot          bool
		}
		var flips []flip
		for _, traceID := range traceIDs {
			cands := stored[traceID]
			known := make(map[string]bool, len(cands)+len(byTrace[traceID]))
			for _, c := range cands {
				known[c.spanID] = true
			}
			for _, p := range byTrace[traceID] {
				if !known[p.spanID] {
					known[p.spanID] = true
					cands = append(cands, &rootCandidate{spanID: p.spanID, parent: p.parent, startNS: p.startNS, marked: p.marked, pending: p})
				}
			}
			root := chooseRoot(cands, known)
			for _, c := range cands {
				isRoot := c == root
				switch {
				case c.pending != nil:
					// Set on every attempt: the group commit may run fn twice.
					c.pending.args[isRootArg] = boolInt(isRoot)
					insert = append(insert, c.pending)
				case c.isRoot != isRoot:
					flips = append(flips, flip{traceID, c.spanID, isRoot})
				}
			}
		}
		if err := insertSpans(ctx, tx, db.dialect, insert); err != nil {
			return err
		}
		for _, f := range flips {
			if _, err := tx.ExecContext(ctx, `UPDATE spans SET is_root = $1 WHERE trace_id = $2 AND span_id = $3`,
				boolInt(f.isRoot), f.traceID, f.spanID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: writing spans: %w", err)
	}
	return nil
}

// pending encodes the columns of s, leaving is_root for Write to decide.
func (t *Traces) pending(s *telemetry.Span, traceID, spanID string) (*pendingSpan, error) {
	attrs := s.Attributes
	if attrs != nil {
		clean := make(map[string]string, len(attrs))
		for k, v := range attrs {
			clean[text(k)] = text(v)
		}
		attrs = clean
	}
	// A nil map is stored as null and an empty one as {}, so each reads back
	// as it was written.
	aj, err := jsonArg(attrs)
	if err != nil {
		return nil, err
	}
	var duration time.Duration
	if !s.Start.IsZero() && !s.End.IsZero() {
		duration = s.Duration()
	}
	p := &pendingSpan{
		traceID: traceID, spanID: spanID, parent: text(s.ParentID), startNS: nsOf(s.Start),
		marked: s.Attributes[RootAttribute] == "true",
	}
	p.args = []any{traceID, spanID, p.parent, text(s.Name), text(s.Kind), p.startNS, t.db.timeArg(normTime(s.Start)),
		nsOf(s.End), int64(duration), text(s.Status), text(s.StatusMessage),
		text(s.RunID), text(s.SessionID), text(s.UserID), text(s.AgentID), text(s.TeamID),
		int64(s.InputTokens), int64(s.OutputTokens), aj, boolInt(p.marked), 0}
	return p, nil
}

// chooseRoot applies the root rule (see Traces) to the spans of one trace;
// known holds their span ids.
func chooseRoot(cands []*rootCandidate, known map[string]bool) *rootCandidate {
	rank := func(c *rootCandidate) int {
		switch {
		case c.marked:
			return 0
		case c.parent == "" || !known[c.parent]:
			return 1
		default:
			return 2
		}
	}
	var best *rootCandidate
	bestRank := 0
	for _, c := range cands {
		r := rank(c)
		if best == nil || cmp.Or(cmp.Compare(r, bestRank), cmp.Compare(c.startNS, best.startNS), strings.Compare(c.spanID, best.spanID)) < 0 {
			best, bestRank = c, r
		}
	}
	return best
}

// insertSpans inserts the spans, skipping those already stored. SQLite runs
// in-process, so one prepared statement run per span costs no round trips,
// where the driver would bind the parameters of a multi-row INSERT in
// quadratic time; PostgreSQL takes chunks of rows per statement.
func insertSpans(ctx context.Context, tx *sql.Tx, dialect string, spans []*pendingSpan) error {
	const conflict = ` ON CONFLICT (trace_id, span_id) DO NOTHING`
	if dialect == DialectSQLite {
		var q strings.Builder
		q.WriteString(`INSERT INTO spans (` + spanInsertColumns + `) VALUES `)
		placeholders(&q, 0, nSpanInsertArgs)
		stmt, err := tx.PrepareContext(ctx, q.String()+conflict)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, p := range spans {
			if _, err := stmt.ExecContext(ctx, p.args...); err != nil {
				return err
			}
		}
		return nil
	}
	for start := 0; start < len(spans); start += spanChunk {
		chunk := spans[start:min(start+spanChunk, len(spans))]
		var q strings.Builder
		q.WriteString(`INSERT INTO spans (` + spanInsertColumns + `) VALUES `)
		args := make([]any, 0, len(chunk)*nSpanInsertArgs)
		for i, p := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			placeholders(&q, len(args), nSpanInsertArgs)
			args = append(args, p.args...)
		}
		if _, err := tx.ExecContext(ctx, q.String()+conflict, args...); err != nil {
			return err
		}
	}
	return nil
}

// storedRootCandidates reads what the root rule needs of the stored spans of
// the traces. The ids travel as one JSON array, whatever their number.
func storedRootCandidates(ctx context.Context, tx *sql.Tx, dialect string, traceIDs []string) (map[string][]*rootCandidate, error) {
	ids, err := jsonArg(traceIDs)
	if err != nil {
		return nil, err
	}
	list := `SELECT value FROM json_each($1)`
	if dialect == DialectPostgres {
		list = `SELECT json_array_elements_text($1::json)`
	}
	rows, err := tx.QueryContext(ctx, `SELECT trace_id, span_id, parent_span_id, start_ns, marked_root, is_root FROM spans
		WHERE trace_id IN (`+list+`)`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]*rootCandidate{}
	for rows.Next() {
		var traceID string
		var marked, isRoot int
		c := &rootCandidate{}
		if err := rows.Scan(&traceID, &c.spanID, &c.parent, &c.startNS, &marked, &isRoot); err != nil {
			return nil, err
		}
		c.marked, c.isRoot = marked == 1, isRoot == 1
		out[traceID] = append(out[traceID], c)
	}
	return out, rows.Err()
}

// lockTraces takes PostgreSQL advisory locks on the traces for the rest of tx,
// so that two processes writing spans of one trace (a caller and a remote
// agent it called) apply the root rule one after the other, each seeing the
// other's spans. Keys are taken in order, so writers never deadlock; a hash
// collision only serializes two unrelated traces.
func lockTraces(ctx context.Context, tx *sql.Tx, traceIDs []string) error {
	keys := make([]int32, 0, len(traceIDs))
	for _, id := range traceIDs {
		h := fnv.New32a()
		_, _ = h.Write([]byte(id))
		keys = append(keys, int32(h.Sum32()))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for start := 0; start < len(keys); start += spanChunk {
		chunk := keys[start:min(start+spanChunk, len(keys))]
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

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// GetTrace implements telemetry.Reader: every span of the trace, ordered by
// start time, then span id; an empty slice when there is none. Times come
// back in UTC, to the nanosecond.
func (t *Traces) GetTrace(ctx context.Context, traceID string) ([]telemetry.Span, error) {
	rows, err := t.db.r.QueryContext(ctx, `SELECT `+spanReadColumns+` FROM spans WHERE trace_id = $1 ORDER BY start_ns, span_id`, traceID)
	if err != nil {
		return nil, fmt.Errorf("store: reading trace: %w", err)
	}
	defer rows.Close()
	out := []telemetry.Span{}
	for rows.Next() {
		var s telemetry.Span
		var startNS, endNS int64
		var attrs []byte
		if err := rows.Scan(&s.TraceID, &s.SpanID, &s.ParentID, &s.Name, &s.Kind, &startNS, &endNS,
			&s.Status, &s.StatusMessage, &s.RunID, &s.SessionID, &s.UserID, &s.AgentID, &s.TeamID,
			&s.InputTokens, &s.OutputTokens, &attrs); err != nil {
			return nil, fmt.Errorf("store: reading trace: %w", err)
		}
		s.Start, s.End = timeOfNS(startNS), timeOfNS(endNS)
		if err := decodeJSON(attrs, &s.Attributes); err != nil {
			return nil, fmt.Errorf("store: decoding span attributes: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading trace: %w", err)
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

	// The literal is_root = 1 (not a parameter) matches the partial indexes.
	where := []string{"is_root = 1"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, f := range []struct{ col, v string }{
		{"run_id", q.RunID}, {"session_id", q.SessionID}, {"user_id", q.UserID},
		{"agent_id", q.AgentID}, {"team_id", q.TeamID}, {"status", q.Status},
	} {
		if f.v != "" {
			where = append(where, f.col+" = "+arg(f.v))
		}
	}
	if !q.StartTime.IsZero() {
		where = append(where, "start_ns >= "+arg(q.StartTime.UnixNano()))
	}
	if !q.EndTime.IsZero() {
		where = append(where, "start_ns <= "+arg(q.EndTime.UnixNano()))
	}
	filter := strings.Join(where, " AND ")

	out := []telemetry.TraceSummary{}
	if page-1 > (math.MaxInt-limit)/limit {
		// No database holds that many traces; OFFSET would overflow.
		total, err := t.countTraces(ctx, filter, args)
		return out, total, err
	}
	offset := (page - 1) * limit

	// The page is chosen from the roots' indexes alone; only its rows are
	// read in full and have their trace's spans counted. LIMIT and OFFSET are
	// literals: SQLite prepares a statement again when it binds a LIMIT
	// parameter, whose value can change the plan.
	query := `WITH page AS (
		SELECT trace_id, span_id, start_ns FROM spans WHERE ` + filter + `
		ORDER BY start_ns DESC, trace_id DESC LIMIT ` + strconv.Itoa(limit) + ` OFFSET ` + strconv.Itoa(offset) + `
	)
	SELECT r.trace_id, r.name, r.status, r.start_ns, r.end_ns, r.duration_ns, r.run_id, r.session_id, r.user_id, r.agent_id, r.team_id,
		r.attributes,
		(SELECT COUNT(*) FROM spans s WHERE s.trace_id = p.trace_id),
		(SELECT COUNT(*) FROM spans s WHERE s.trace_id = p.trace_id AND s.status = '` + telemetry.StatusError + `')
	FROM page p
	JOIN spans r ON r.trace_id = p.trace_id AND r.span_id = p.span_id
	ORDER BY p.start_ns DESC, p.trace_id DESC`
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: listing traces: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s telemetry.TraceSummary
		var startNS, endNS, durationNS int64
		var attrs []byte
		if err := rows.Scan(&s.TraceID, &s.Name, &s.Status, &startNS, &endNS, &durationNS, &s.RunID, &s.SessionID, &s.UserID,
			&s.AgentID, &s.TeamID, &attrs, &s.TotalSpans, &s.ErrorCount); err != nil {
			return nil, 0, fmt.Errorf("store: listing traces: %w", err)
		}
		s.StartTime, s.EndTime, s.Duration = timeOfNS(startNS), timeOfNS(endNS), time.Duration(durationNS)
		var a map[string]string
		if err := decodeJSON(attrs, &a); err != nil {
			return nil, 0, fmt.Errorf("store: decoding span attributes: %w", err)
		}
		s.Input = a[telemetry.InputAttribute]
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

func (t *Traces) countTraces(ctx context.Context, filter string, args []any) (int, error) {
	var n int
	if err := t.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM spans WHERE `+filter, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: counting traces: %w", err)
	}
	return n, nil
}
