package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/troupehq/troupe/telemetry"
)

// Paging limits of ListTraces.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// rootKey orders a trace's spans so that its root comes first: a span marked
// with telemetry.RootAttribute, then one without a parent, then (a trace continued
// from a remote traceparent, whose root's parent lives in the caller's
// store) the earliest; ties go to the smallest span id. argMin over this
// tuple picks the root's fields in one GROUP BY pass.
const rootKey = "(attr_values[indexOf(attr_keys, '" + telemetry.RootAttribute + "')] != 'true', parent_span_id != '', start_ns, span_id)"

// summarySelect computes a trace's summary from its spans. The root's fields
// come from one argMin over a tuple (a dozen separate argMins, each keeping
// its own copy of the key, are about 2.5 times slower). Only functions that
// ClickHouse 18.16 has are used (argMin, tupleElement, count, countIf,
// indexOf); the aliases differ from column names, which ClickHouse would
// otherwise substitute into the expressions.
var summarySelect = strings.Join([]string{
	"trace_id",
	"tupleElement(argMin((name, status, start_ns, end_ns, duration_ns, attr_values[indexOf(attr_keys, '" + telemetry.InputAttribute + "')], " +
		"run_id, session_id, user_id, agent_id, team_id), " + rootKey + ") AS root, 1) AS r_name",
	"tupleElement(root, 2) AS r_status",
	"tupleElement(root, 3) AS r_start_ns",
	"tupleElement(root, 4) AS r_end_ns",
	"tupleElement(root, 5) AS r_duration_ns",
	"count() AS n_spans",
	"countIf(status = '" + telemetry.StatusError + "') AS n_errors",
	"tupleElement(root, 6) AS r_input",
	"tupleElement(root, 7) AS r_run_id",
	"tupleElement(root, 8) AS r_session_id",
	"tupleElement(root, 9) AS r_user_id",
	"tupleElement(root, 10) AS r_agent_id",
	"tupleElement(root, 11) AS r_team_id",
}, ",\n\t")

// listQuery builds the grouped query and its arguments for q's filters.
//
// Filters apply to the trace's summary, that is to its root span: run,
// session, user, agent, team and status equal the root's; StartTime and
// EndTime bound the root's start, both inclusive (as in the SQL store). They
// are checked in HAVING; the same conditions on single spans (which the root
// satisfies) first narrow the traces to aggregate, and let ClickHouse prune
// partitions by start_time.
//
// filtered is false when q has no filters.
func (s *Store) listQuery(q telemetry.TraceQuery) (query string, args []any, filtered bool) {
	var where, having []string
	var whereArgs, havingArgs []any
	eq := func(col, val string) {
		if val == "" {
			return
		}
		where = append(where, col+" = ?")
		whereArgs = append(whereArgs, val)
		having = append(having, "r_"+col+" = ?")
		havingArgs = append(havingArgs, val)
	}
	eq("run_id", q.RunID)
	eq("session_id", q.SessionID)
	eq("user_id", q.UserID)
	eq("agent_id", q.AgentID)
	eq("team_id", q.TeamID)
	eq("status", q.Status)
	if !q.StartTime.IsZero() {
		ns := unixNano(q.StartTime)
		where = append(where, "start_time >= toDateTime(?)", "start_ns >= ?")
		whereArgs = append(whereArgs, ns/uint64(time.Second), ns)
		having = append(having, "r_start_ns >= ?")
		havingArgs = append(havingArgs, ns)
	}
	if !q.EndTime.IsZero() {
		ns := unixNano(q.EndTime)
		where = append(where, "start_time <= toDateTime(?)", "start_ns <= ?")
		whereArgs = append(whereArgs, ns/uint64(time.Second), ns)
		having = append(having, "r_start_ns <= ?")
		havingArgs = append(havingArgs, ns)
	}

	var b strings.Builder
	b.WriteString("SELECT\n\t" + summarySelect + "\nFROM " + s.table)
	args = make([]any, 0, len(whereArgs)+len(havingArgs)+2)
	if len(where) > 0 {
		b.WriteString("\nWHERE trace_id IN (SELECT trace_id FROM " + s.table + " WHERE " + strings.Join(where, " AND ") + ")")
		args = append(args, whereArgs...)
	}
	b.WriteString("\nGROUP BY trace_id")
	if len(having) > 0 {
		b.WriteString("\nHAVING " + strings.Join(having, " AND "))
		args = append(args, havingArgs...)
	}
	return b.String(), args, len(having) > 0
}

// ListTraces returns trace summaries, newest first, and the number of traces
// matching the filters. Limit defaults to 20 and is capped at 100; Page
// starts at 1.
func (s *Store) ListTraces(ctx context.Context, q telemetry.TraceQuery) ([]telemetry.TraceSummary, int, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	if limit > MaxLimit {
		limit = MaxLimit
	}
	page := q.Page
	if page < 1 {
		page = 1
	}
	grouped, args, filtered := s.listQuery(q)

	out := []telemetry.TraceSummary{}
	offset := uint64(page-1) * uint64(limit)
	query := grouped + "\nORDER BY r_start_ns DESC, trace_id DESC\nLIMIT ? OFFSET ?"
	rows, err := s.query(ctx, query, append(slices.Clone(args), uint64(limit), offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("clickhouse: list traces: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			t                     telemetry.TraceSummary
			startNs, endNs, durNs uint64
			nSpans, nErrors       uint64
		)
		if err := rows.Scan(&t.TraceID, &t.Name, &t.Status, &startNs, &endNs, &durNs, &nSpans, &nErrors, &t.Input,
			&t.RunID, &t.SessionID, &t.UserID, &t.AgentID, &t.TeamID); err != nil {
			return nil, 0, fmt.Errorf("clickhouse: list traces: scan: %w", err)
		}
		t.StartTime, t.EndTime = fromUnixNano(startNs), fromUnixNano(endNs)
		t.Duration = time.Duration(durNs)
		t.TotalSpans, t.ErrorCount = int(nSpans), int(nErrors)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("clickhouse: list traces: %w", withCtxErr(ctx, err))
	}
	rows.Close()

	// A page that is neither full nor past the end tells the total itself,
	// and spares the server a second pass over the traces.
	if len(out) > 0 && len(out) < limit || page == 1 && len(out) == 0 {
		return out, int(offset) + len(out), nil
	}
	var total uint64
	countSQL := "SELECT uniqExact(trace_id) FROM " + s.table
	if filtered {
		countSQL = "SELECT count() FROM (\n" + grouped + "\n)"
	}
	if err := s.queryRow(ctx, []any{&total}, countSQL, args...); err != nil {
		return nil, 0, fmt.Errorf("clickhouse: count traces: %w", err)
	}
	return out, int(total), nil
}

// GetTrace returns every span of a trace ordered by start time (then span
// id), with nanosecond times in UTC; an empty slice when there is none.
func (s *Store) GetTrace(ctx context.Context, traceID string) ([]telemetry.Span, error) {
	out := []telemetry.Span{}
	if traceID == "" {
		return out, nil
	}
	// When the trace's spans start bounds the spans to read (see traceStartTable);
	// a trace the table does not know is read from every span.
	// Times travel as Unix seconds, which no time zone can shift.
	var from, to, known uint64
	if err := s.queryRow(ctx, []any{&from, &to, &known}, "SELECT toUInt64(toUInt32(min(start_time))), toUInt64(toUInt32(max(last_start_time))), count() FROM "+
		s.starts+" WHERE trace_id = ?", traceID); err != nil {
		return nil, fmt.Errorf("clickhouse: get trace %s: %w", traceID, err)
	}
	where, args := " WHERE trace_id = ?", []any{traceID}
	if known > 0 {
		where, args = " WHERE start_time BETWEEN toDateTime(?) AND toDateTime(?) AND trace_id = ?", []any{from, to, traceID}
	}
	rows, err := s.query(ctx, "SELECT "+strings.Join(readColumns, ", ")+" FROM "+s.table+where+" ORDER BY start_ns, span_id", args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: get trace %s: %w", traceID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			sp             telemetry.Span
			startNs, endNs uint64
			inTok, outTok  int64
			keys, values   []string
		)
		if err := rows.Scan(&sp.TraceID, &sp.SpanID, &sp.ParentID, &sp.Name, &sp.Kind, &startNs, &endNs,
			&sp.Status, &sp.StatusMessage, &sp.RunID, &sp.SessionID, &sp.UserID, &sp.AgentID, &sp.TeamID,
			&inTok, &outTok, &keys, &values); err != nil {
			return nil, fmt.Errorf("clickhouse: get trace %s: scan: %w", traceID, err)
		}
		sp.Start, sp.End = fromUnixNano(startNs), fromUnixNano(endNs)
		sp.InputTokens, sp.OutputTokens = int(inTok), int(outTok)
		if len(keys) > 0 {
			sp.Attributes = make(map[string]string, len(keys))
			for i, k := range keys {
				if i < len(values) {
					sp.Attributes[k] = values[i]
				}
			}
		}
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: get trace %s: %w", traceID, withCtxErr(ctx, err))
	}
	return out, nil
}

var readColumns = []string{
	"trace_id", "span_id", "parent_span_id", "name", "kind", "start_ns", "end_ns",
	"status", "status_message", "run_id", "session_id", "user_id", "agent_id", "team_id",
	"input_tokens", "output_tokens", "attr_keys", "attr_values",
}
