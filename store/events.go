package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
)

var _ session.EventLog = (*DB)(nil)

// eventBatch bounds the rows of one INSERT into run_events: 4 arguments a
// row stays far below SQLite's and PostgreSQL's parameter limits, and the
// run service's batches are this size anyway.
const eventBatch = 64

// maxEventsRead bounds one EventsAfter read.
const maxEventsRead = 1000

const sqlEventsAfter = `SELECT idx, payload FROM run_events WHERE run_id = $1 AND idx > $2 ORDER BY idx LIMIT $3`

// AppendEvents stores events of run runID under their indexes (event.Event
// Index), in one transaction. Writing an index again replaces the event
// stored under it: the run service rewrites the terminal event when the
// run's final state could not be saved. It returns an error when the run
// does not exist.
func (db *DB) AppendEvents(ctx context.Context, runID string, events []event.Event) error {
	if len(events) == 0 {
		return nil
	}
	ins, err := eventInserts(runID, events)
	if err != nil {
		return fmt.Errorf("store: appending events of run %s: %w", runID, err)
	}
	if err := db.write(ctx, ins.exec); err != nil {
		return fmt.Errorf("store: appending events of run %s: %w", runID, err)
	}
	return nil
}

// FinishRunWithEvents stores events of run r (as AppendEvents does) and r's
// final state (as FinishRun does) in one transaction: a run's last events
// cost no commit of their own, and whoever reads the run finished finds all
// of them. When the run does not exist it writes nothing and returns an
// error wrapping ErrNotFound.
func (db *DB) FinishRunWithEvents(ctx context.Context, r *Run, events []event.Event) error {
	return db.finishRun(ctx, r, events)
}

// inserts are the INSERT statements of a batch of events, with their
// arguments.
type inserts struct {
	stmts []string
	args  [][]any
}

// exec runs the inserts in tx (a writeFunc).
func (ins inserts) exec(ctx context.Context, tx *sql.Tx) error {
	for i, s := range ins.stmts {
		if _, err := tx.ExecContext(ctx, s, ins.args[i]...); err != nil {
			return err
		}
	}
	return nil
}

// eventInserts builds multi-row inserts of events, eventBatch rows each.
func eventInserts(runID string, events []event.Event) (inserts, error) {
	var ins inserts
	var q strings.Builder
	for chunk := range slices.Chunk(events, eventBatch) {
		q.Reset()
		args := make([]any, 0, 4*len(chunk))
		q.WriteString("INSERT INTO run_events (run_id, idx, type, payload) VALUES ")
		for i, e := range chunk {
			payload, err := json.Marshal(e)
			if err != nil {
				return ins, fmt.Errorf("encoding event %d: %w", e.Index, err)
			}
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			q.WriteString("($" + strconv.Itoa(n+1) + ", $" + strconv.Itoa(n+2) + ", $" + strconv.Itoa(n+3) + ", $" + strconv.Itoa(n+4) + ")")
			args = append(args, runID, e.Index, string(e.Type), text(string(payload)))
		}
		q.WriteString(sqlEventsUpsert)
		ins.stmts = append(ins.stmts, q.String())
		ins.args = append(ins.args, args)
	}
	return ins, nil
}

const sqlEventsUpsert = " ON CONFLICT (run_id, idx) DO UPDATE SET type = excluded.type, payload = excluded.payload"

// eventArrays returns the columns of events as arrays, for PostgreSQL's
// unnest: one statement whatever their number.
func eventArrays(events []event.Event) (idx []int64, types, payloads []string, err error) {
	idx, types, payloads = make([]int64, len(events)), make([]string, len(events)), make([]string, len(events))
	for i, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("encoding event %d: %w", e.Index, err)
		}
		idx[i], types[i], payloads[i] = int64(e.Index), string(e.Type), text(string(b))
	}
	return idx, types, payloads, nil
}

// EventsAfter returns the stored events of run runID whose index is above
// after, in order, at most limit of them (and never more than 1000). The
// events carry their index.
func (db *DB) EventsAfter(ctx context.Context, runID string, after, limit int) ([]event.Event, error) {
	if limit <= 0 || limit > maxEventsRead {
		limit = maxEventsRead
	}
	rows, err := db.r.QueryContext(ctx, sqlEventsAfter, runID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: reading events of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []event.Event
	for rows.Next() {
		var (
			idx     int
			payload string
		)
		if err := rows.Scan(&idx, &payload); err != nil {
			return nil, fmt.Errorf("store: reading events of run %s: %w", runID, err)
		}
		var e event.Event
		if err := json.Unmarshal([]byte(payload), &e); err != nil {
			return nil, fmt.Errorf("store: reading event %d of run %s: %w", idx, runID, err)
		}
		e.Index = idx
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading events of run %s: %w", runID, err)
	}
	return out, nil
}
