package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/spec"
)

// EventLog keeps the events of top-level runs where every replica can read
// them (store.DB, in the database the replicas share), so a client that lost
// its stream can resume it anywhere. Its methods are called concurrently.
type EventLog interface {
	// AppendEvents stores events of run runID under their Index, in one
	// transaction; writing an index again replaces what it held.
	AppendEvents(ctx context.Context, runID string, events []event.Event) error
	// EventsAfter returns up to limit stored events of run runID with an
	// Index above after, in order, Index set. The caller may keep them.
	EventsAfter(ctx context.Context, runID string, after, limit int) ([]event.Event, error)
	// FinishRunWithEvents stores events of run r, as AppendEvents, and r's
	// final state, as Store.FinishRun, in one transaction: the last batch
	// costs no commit of its own. Nothing is written when it fails.
	FinishRunWithEvents(ctx context.Context, r *Run, events []event.Event) error
	// GetRun returns run id if f lets the caller see it, or an error
	// wrapping ErrNotFound.
	GetRun(ctx context.Context, id string, f Filter) (*Run, error)
}

// Defaults of the event log's batching and tailing (see Options).
const (
	defaultFlushInterval = 50 * time.Millisecond
	defaultFlushEvents   = 64
	defaultPollInterval  = 100 * time.Millisecond
	// readBatch is how many logged events a resume reads at a time.
	readBatch = 256
)

// journal is the events of one run in flight, indexed, in memory: streams
// resumed on the replica executing the run read them here, and a flusher
// writes them to the event log in batches. One goroutine appends (the run's
// emit), one writes (the flusher, then Execute), many may follow.
type journal struct {
	mu     sync.Mutex
	events []event.Event
	// written is how many events have been taken for the log.
	written int
	// wake, when not nil, is closed at the next append or at the end:
	// followers waiting for more made it.
	wake  chan struct{}
	ended bool
	// kick tells the flusher that a full batch is waiting.
	kick chan struct{}
	// batch is Options.FlushEvents.
	batch int
}

func newJournal(batch int) *journal {
	return &journal{events: make([]event.Event, 0, 16), kick: make(chan struct{}, 1), batch: batch}
}

// append gives e the next index, keeps it and returns it.
func (j *journal) append(e event.Event) event.Event {
	j.mu.Lock()
	e.Index = len(j.events)
	j.events = append(j.events, e)
	full := len(j.events)-j.written >= j.batch
	j.wakeLocked()
	j.mu.Unlock()
	if full {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	return e
}

// next returns the index the next event will have.
func (j *journal) next() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.events)
}

// end marks the run's events complete.
func (j *journal) end() {
	j.mu.Lock()
	j.ended = true
	j.wakeLocked()
	j.mu.Unlock()
}

func (j *journal) wakeLocked() {
	if j.wake != nil {
		close(j.wake)
		j.wake = nil
	}
}

// take returns the events not yet taken for the log. Appends never change
// the elements of the returned slice, so it may be read without the lock.
func (j *journal) take() []event.Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := j.events[j.written:len(j.events):len(j.events)]
	j.written = len(j.events)
	return out
}

// follow sends the events from index from on to emit, waiting for new ones,
// until it has sent the last event of an ended journal, ctx ends or emit
// fails.
func (j *journal) follow(ctx context.Context, from int, emit func(event.Event) error) error {
	for {
		j.mu.Lock()
		evs := j.events[min(from, len(j.events)):len(j.events):len(j.events)]
		ended := j.ended
		var wake chan struct{}
		if len(evs) == 0 && !ended {
			if j.wake == nil {
				j.wake = make(chan struct{})
			}
			wake = j.wake
		}
		j.mu.Unlock()
		for _, e := range evs {
			if err := emit(e); err != nil {
				return err
			}
			from = e.Index + 1
		}
		if len(evs) == 0 {
			if ended {
				return nil
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
	}
}

// flush writes the journal's events to the log every interval, or sooner
// when a full batch waits, until stop is closed. It owns the log's writes
// until it returns; Execute writes the rest after.
func (t *Turn) flush(ctx context.Context, j *journal, stop <-chan struct{}) {
	tick := time.NewTicker(t.s.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		case <-j.kick:
		}
		t.writeLog(ctx, j.take())
	}
}

// writeLog appends events to the log. A failure loses them for resumes on
// other replicas only (the live stream has them), so it is logged, not
// returned: the run goes on.
func (t *Turn) writeLog(ctx context.Context, evs []event.Event) {
	if len(evs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := t.s.opts.Events.AppendEvents(ctx, t.run.ID, evs); err != nil {
		t.s.log.Warn("writing run events to the event log", "run_id", t.run.ID, "events", len(evs), "err", err)
	}
}

// ResumeParams name a run whose stream to resume.
type ResumeParams struct {
	Kind  spec.Kind
	Name  string
	RunID string
	// After is the index of the last event the client has; -1 resumes from
	// the first.
	After int
	// UserID, when set, is the only user whose runs may be resumed, as for
	// Cancel.
	UserID string
}

// Resume finds the run p names, so that its events after p.After can be
// streamed. Any replica can resume any run: the events come from the
// journal of the run when it executes here, else from the event log. An
// unknown run, a member run, a run of another target or one p.UserID may not
// see is an *Error of kind ErrNotFound.
func (s *Service) Resume(ctx context.Context, p ResumeParams) (*Replay, error) {
	notFound := &Error{Kind: ErrNotFound, Msg: fmt.Sprintf("run %s of %s %s not found", p.RunID, p.Kind.Lower(), p.Name)}
	if p.After < -1 {
		p.After = -1
	}
	if s.opts.Events == nil {
		s.mu.Lock()
		a, ok := s.active[p.RunID]
		s.mu.Unlock()
		if !ok || !(Match{Kind: p.Kind, Name: p.Name, UserID: p.UserID}).matches(a) {
			return nil, notFound
		}
		return &Replay{s: s, p: p}, nil
	}
	r, err := s.opts.Events.GetRun(ctx, p.RunID, Filter{UserID: p.UserID})
	if errors.Is(err, ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("resuming run %s: %w", p.RunID, err)
	}
	if r.ParentRunID != "" || r.ComponentID != p.Name || r.Type != TypeOf(p.Kind) {
		return nil, notFound
	}
	return &Replay{s: s, p: p}, nil
}

// Replay streams the events of a run that Resume found.
type Replay struct {
	s *Service
	p ResumeParams
}

// journalOf returns the journal of run id when it executes here.
func (s *Service) journalOf(id string) *journal {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.active[id]; ok {
		return a.journal
	}
	return nil
}

// Stream sends the run's events after ResumeParams.After to emit, each once
// and in order, the live ones as they come, and returns after the run's
// terminal event, or when ctx ends or emit fails (with that error). A run
// found finished whose log lacks its terminal event (it finished before
// events were logged, or its replica died) ends with one made from its
// stored state.
//
// Another replica's run is tailed by polling the log every
// Options.PollInterval: its writer flushes every Options.FlushInterval
// anyway, and polling one indexed range works alike on SQLite and
// PostgreSQL with no connection held per stream.
func (r *Replay) Stream(ctx context.Context, emit func(event.Event) error) error {
	s, next := r.s, r.p.After+1
	for {
		if j := s.journalOf(r.p.RunID); j != nil {
			// It executes here: the journal holds every event of the run.
			return j.follow(ctx, next, emit)
		}
		if s.opts.Events == nil {
			return nil // the run ended; without a log its events are gone
		}
		evs, err := s.opts.Events.EventsAfter(ctx, r.p.RunID, next-1, readBatch)
		if err != nil {
			return fmt.Errorf("reading events of run %s: %w", r.p.RunID, err)
		}
		for _, e := range evs {
			if err := emit(e); err != nil {
				return err
			}
			next = e.Index + 1
			if e.Depth == 0 && e.Type.Terminal() {
				return nil
			}
		}
		if len(evs) >= readBatch {
			continue
		}
		if len(evs) == 0 {
			run, err := s.opts.Events.GetRun(ctx, r.p.RunID, Filter{})
			if errors.Is(err, ErrNotFound) {
				return nil // deleted with its session meanwhile
			}
			if err != nil {
				return fmt.Errorf("reading run %s: %w", r.p.RunID, err)
			}
			if run.Status.Terminal() {
				// The terminal event is logged before the final state is
				// committed: read once more, then make it up.
				evs, err := s.opts.Events.EventsAfter(ctx, r.p.RunID, next-1, readBatch)
				if err != nil {
					return fmt.Errorf("reading events of run %s: %w", r.p.RunID, err)
				}
				if len(evs) > 0 {
					continue
				}
				return emit(terminalOf(run, next))
			}
		}
		select {
		case <-time.After(s.opts.PollInterval):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// terminalOf is the terminal event of a finished run whose log lacks it,
// with index idx.
func terminalOf(r *Run, idx int) event.Event {
	e := event.Event{Index: idx, RunID: r.ID, SessionID: r.SessionID, CreatedAt: r.UpdatedAt}
	if r.Type == TypeTeam {
		e.TeamID = r.ComponentID
	} else {
		e.AgentID = r.ComponentID
	}
	switch r.Status {
	case event.StatusCompleted:
		e.Type, e.Content, e.References, e.Tools = event.RunCompleted, r.Content, r.References, r.Tools
		m := r.Metrics
		e.Metrics = &m
	case event.StatusCancelled:
		e.Type, e.Content = event.RunCancelled, r.Error
	default:
		e.Type, e.Content = event.RunError, r.Error
	}
	return e
}
