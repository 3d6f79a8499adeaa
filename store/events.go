package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
)

var _ session.EventLog = (*DB)(nil)

// maxEventsRead bounds one EventsAfter read, in events.
const maxEventsRead = 1000

const (
	// sqlInsertEvents stores one batch of a run's events; writing its first
	// index again replaces it (the run service rewrites a batch whose
	// commit failed).
	sqlInsertEvents = `INSERT INTO run_events (run_id, idx, last_idx, events) VALUES ($1, $2, $3, $4)` + sqlEventsUpsert
	sqlEventsUpsert = ` ON CONFLICT (run_id, idx) DO UPDATE SET last_idx = excluded.last_idx, events = excluded.events`
	// sqlEventsAfter reads the batches that hold events after an index.
	sqlEventsAfter = `SELECT events FROM run_events WHERE run_id = $1 AND last_idx > $2 ORDER BY idx LIMIT $3`
)

// loggedEvent is one element of a batch's JSON array: the event with its
// index, which event.Event's own JSON leaves out.
type loggedEvent struct {
	I int         `json:"i"`
	E event.Event `json:"e"`
}

// encodeEvents returns a batch as its row's arguments: first and last
// index and the events as JSON.
func encodeEvents(events []event.Event) (first, last int, data string, err error) {
	b := make([]byte, 0, 256*len(events))
	b = append(b, '[')
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"i":`...)
		b = strconv.AppendInt(b, int64(e.Index), 10)
		b = append(b, `,"e":`...)
		ej, err := json.Marshal(e)
		if err != nil {
			return 0, 0, "", fmt.Errorf("encoding event %d: %w", e.Index, err)
		}
		b = append(b, ej...)
		b = append(b, '}')
	}
	b = append(b, ']')
	return events[0].Index, events[len(events)-1].Index, text(string(b)), nil
}

// AppendEvents stores events of run runID, a batch in index order, as one
// row in one transaction. Writing a batch with the same first index again
// replaces it. It returns an error when the run does not exist.
func (db *DB) AppendEvents(ctx context.Context, runID string, events []event.Event) error {
	if len(events) == 0 {
		return nil
	}
	first, last, data, err := encodeEvents(events)
	if err != nil {
		return fmt.Errorf("store: appending events of run %s: %w", runID, err)
	}
	if db.dialect == DialectPostgres {
		_, err = db.w.ExecContext(ctx, sqlInsertEvents, runID, first, last, data)
	} else {
		err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.StmtContext(ctx, db.st.insertEvents).ExecContext(ctx, runID, first, last, data)
			return err
		})
	}
	if err != nil {
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
	for rows.Next() && len(out) < limit {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("store: reading events of run %s: %w", runID, err)
		}
		var batch []loggedEvent
		if err := json.Unmarshal([]byte(data), &batch); err != nil {
			return nil, fmt.Errorf("store: reading events of run %s: %w", runID, err)
		}
		for _, le := range batch {
			if le.I > after {
				le.E.Index = le.I
				out = append(out, le.E)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading events of run %s: %w", runID, err)
	}
	if len(out) > limit {
		out = out[:limit] // the rest of the batch comes with the next read
	}
	return out, nil
}
