package clickhouse

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/troupehq/troupe/telemetry"
)

// spanColumns holds a batch of spans column by column, the shape the native
// protocol sends, which is much cheaper than appending row by row.
type spanColumns struct {
	traceID, spanID, parentID, name, kind []string
	startTime                             []time.Time
	startNs, endNs, durationNs            []uint64
	status, statusMessage                 []string
	runID, sessionID, userID, agentID     []string
	teamID                                []string
	inputTokens, outputTokens             []int64
	attrKeys, attrValues                  [][]string
}

func toColumns(spans []telemetry.Span) *spanColumns {
	n := len(spans)
	c := &spanColumns{
		traceID: make([]string, n), spanID: make([]string, n), parentID: make([]string, n),
		name: make([]string, n), kind: make([]string, n),
		startTime: make([]time.Time, n),
		startNs:   make([]uint64, n), endNs: make([]uint64, n), durationNs: make([]uint64, n),
		status: make([]string, n), statusMessage: make([]string, n),
		runID: make([]string, n), sessionID: make([]string, n), userID: make([]string, n),
		agentID: make([]string, n), teamID: make([]string, n),
		inputTokens: make([]int64, n), outputTokens: make([]int64, n),
		attrKeys: make([][]string, n), attrValues: make([][]string, n),
	}
	for i := range spans {
		sp := &spans[i]
		start, end := unixNano(sp.Start), unixNano(sp.End)
		c.traceID[i], c.spanID[i], c.parentID[i] = sp.TraceID, sp.SpanID, sp.ParentID
		c.name[i], c.kind[i] = sp.Name, sp.Kind
		c.startTime[i] = time.Unix(int64(start/uint64(time.Second)), 0)
		c.startNs[i], c.endNs[i] = start, end
		if start > 0 && end > start {
			c.durationNs[i] = end - start
		}
		c.status[i], c.statusMessage[i] = sp.Status, sp.StatusMessage
		c.runID[i], c.sessionID[i], c.userID[i] = sp.RunID, sp.SessionID, sp.UserID
		c.agentID[i], c.teamID[i] = sp.AgentID, sp.TeamID
		c.inputTokens[i], c.outputTokens[i] = int64(sp.InputTokens), int64(sp.OutputTokens)
		c.attrKeys[i], c.attrValues[i] = splitAttributes(sp.Attributes)
	}
	return c
}

func (c *spanColumns) values() []any {
	return []any{
		c.traceID, c.spanID, c.parentID, c.name, c.kind,
		c.startTime, c.startNs, c.endNs, c.durationNs,
		c.status, c.statusMessage,
		c.runID, c.sessionID, c.userID, c.agentID, c.teamID,
		c.inputTokens, c.outputTokens,
		c.attrKeys, c.attrValues,
	}
}

// unixNano maps a time to nanoseconds since the epoch; the zero time, and
// anything before 1970 (which a UInt64 cannot hold), become 0.
func unixNano(t time.Time) uint64 {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

// fromUnixNano is unixNano's inverse: 0 is the zero time, anything else UTC.
func fromUnixNano(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns)).UTC()
}

// splitAttributes returns the attributes as parallel key and value arrays,
// sorted by key so that equal maps are stored identically.
func splitAttributes(m map[string]string) (keys, values []string) {
	if len(m) == 0 {
		return []string{}, []string{}
	}
	keys = make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values = make([]string, len(keys))
	for i, k := range keys {
		values[i] = m[k]
	}
	return keys, values
}

// Write inserts spans in one batch: a single INSERT with an explicit column
// list (the only insert form ClickHouse 18.16 accepts from this driver). It
// gives up when ctx is done; the connection is dropped rather than left
// half-used. Connections are redialled on the next call, so writes succeed
// again once the server is back.
func (s *Store) Write(ctx context.Context, spans []telemetry.Span) error {
	if len(spans) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("clickhouse: write %d spans: %w", len(spans), err)
	}
	cols := toColumns(spans)
	batch, err := s.prepareBatch(ctx, s.insertSQL())
	if err != nil {
		return fmt.Errorf("clickhouse: write %d spans: prepare insert into %s: %w", len(spans), s.table, err)
	}
	for i, v := range cols.values() {
		if err := batch.Column(i).Append(v); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("clickhouse: write %d spans: column %s: %w", len(spans), columns[i], err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: write %d spans: send: %w", len(spans), withCtxErr(ctx, err))
	}
	return nil
}

func (s *Store) insertSQL() string {
	return "INSERT INTO " + s.table + " (" + strings.Join(columns, ", ") + ")"
}
