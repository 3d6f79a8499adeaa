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
//
// A run's events are logged only when someone wants them: a run started
// with Params.KeepEvents from its start, any other run once a replica that
// does not execute it records a stream request (RequestStream) and the
// executing replica claims it (at most Options.CancelPoll later), from its
// first event on. A foreground run nobody resumes elsewhere writes nothing
// here: its events live in the journal of the replica executing it.
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
	// RequestStream records that a stream of run runID is wanted on
	// another replica, when it is a RUNNING top-level run, and reports
	// whether it is: the replica executing it then logs its events.
	RequestStream(ctx context.Context, runID string) (bool, error)
	// ClaimStreams removes the stream requests recorded for the runs among
	// ids and returns those runs.
	ClaimStreams(ctx context.Context, ids []string) ([]string, error)
}

// Defaults of the event log's batching and tailing (see Options).
const (
	defaultFlushInterval = 50 * time.Millisecond
	defaultFlushEvents   = 64
	defaultPollInterval  = 100 * time.Millisecond
	// readBatch is how many logged events a resume reads at a time.
	readBatch = 256
	// defaultJournalRetention, maxRetained and maxRetainedBytes bound the
	// journals kept after their run ended (see Options.JournalRetention).
	defaultJournalRetention = time.Minute
	maxRetained             = 1024
	maxRetainedBytes        = 32 << 20
)

// journal is the events of one run, indexed, in memory: streams resumed on
// the replica executing the run read them here, while it runs and for
// Options.JournalRetention after, and once the run's events are wanted in
// the log a flusher writes them there in batches. One goroutine appends
// (the run's emit), one writes (the flusher, then Execute), many may follow.
type journal struct {
	mu     sync.Mutex
	events []event.Event
	// size estimates the bytes the events hold, to bound the journals kept
	// after their run.
	size int
	// written is how many events have been taken for the log.
	written int
	// wake, when not nil, is closed at the next append or at the end:
	// followers waiting for more made it.
	wake  chan struct{}
	ended bool
	// logged is set once the events are wanted in the log (want); closed
	// once Execute took over the last writes, after which want does
	// nothing.
	logged, closed bool
	// stop ends the flusher, which flushing tracks; kick tells it that a
	// full batch is waiting. All three exist only once logged.
	stop     chan struct{}
	kick     chan struct{}
	flushing sync.WaitGroup
	// batch is Options.FlushEvents.
	batch int
}

// eventOverhead is what an event costs in a journal beyond its text.
const eventOverhead = 256

func newJournal(batch int) *journal {
	return &journal{events: make([]event.Event, 0, 16), batch: batch}
}

// want starts logging the journal's events, from the first, with a flusher
// that runs flush(stop, kick) until Execute stops it (close). It reports
// whether it started one: not when the events are logged already or the run
// is saving its final state.
func (j *journal) want(flush func(stop, kick <-chan struct{})) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.logged || j.closed {
		return false
	}
	j.logged, j.stop, j.kick = true, make(chan struct{}), make(chan struct{}, 1)
	stop, kick := j.stop, j.kick
	j.flushing.Go(func() { flush(stop, kick) })
	return true
}

// close stops the flusher, if any, once it has written what it took, and
// reports whether the events are logged: Execute then writes the rest.
func (j *journal) close() bool {
	j.mu.Lock()
	j.closed = true
	logged, stop := j.logged, j.stop
	j.mu.Unlock()
	if stop != nil {
		close(stop)
		j.flushing.Wait()
	}
	return logged
}

// append gives e the next index, keeps it and returns it.
func (j *journal) append(e event.Event) event.Event {
	j.mu.Lock()
	e.Index = len(j.events)
	j.events = append(j.events, e)
	j.size += len(e.Content) + eventOverhead
	var kick chan struct{}
	if j.logged && len(j.events)-j.written >= j.batch {
		kick = j.kick
	}
	j.wakeLocked()
	j.mu.Unlock()
	if kick != nil {
		select {
		case kick <- struct{}{}:
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

// flush writes the journal's events to the log at once, then every
// interval or sooner when a full batch waits, until stop is closed. It owns
// the log's writes until it returns; Execute writes the rest after.
func (t *Turn) flush(ctx context.Context, j *journal, stop, kick <-chan struct{}) {
	t.writeLog(ctx, j.take())
	tick := time.NewTicker(t.s.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		case <-kick:
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
		a := s.runHere(p.RunID)
		if a == nil || !(Match{Kind: p.Kind, Name: p.Name, UserID: p.UserID}).matches(a) {
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

// journalOf returns the journal of run id when it executes here or ended
// here less than Options.JournalRetention ago.
func (s *Service) journalOf(id string) *journal {
	if a := s.runHere(id); a != nil {
		return a.journal
	}
	return nil
}

// runHere returns run id when it executes here or its journal is retained.
func (s *Service) runHere(id string) *active {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.active[id]; ok {
		return a
	}
	if a, ok := s.ended[id]; ok && time.Now().Before(a.until) {
		return a
	}
	return nil
}

// retain keeps the journal of run a, which just ended, for
// Options.JournalRetention, so that a client that lost the stream right
// before the end resumes it here with every event. The oldest journals go
// first once more than maxRetained or maxRetainedBytes are kept. Called
// with s.mu held.
func (s *Service) retainLocked(id string, a *active) {
	if s.opts.JournalRetention < 0 {
		return
	}
	now := time.Now()
	a.until = now.Add(s.opts.JournalRetention)
	// What the journal outlives: the turn (logEvents) and the request's
	// context (cancel); only s.active's runs are ever cancelled.
	a.logEvents, a.cancel = nil, nil
	a.journal.mu.Lock()
	size := a.journal.size
	a.journal.mu.Unlock()
	s.ended[id] = a
	s.endedOrder = append(s.endedOrder, id)
	s.endedBytes += size
	for len(s.endedOrder) > 0 {
		first := s.ended[s.endedOrder[0]]
		if len(s.endedOrder) <= maxRetained && s.endedBytes <= maxRetainedBytes && now.Before(first.until) {
			break
		}
		delete(s.ended, s.endedOrder[0])
		s.endedBytes -= first.journal.size // ended: no longer changes
		s.endedOrder[0] = ""
		s.endedOrder = s.endedOrder[1:]
	}
}

// claimStreams starts logging the events of the active runs among ids that
// other replicas asked to stream (see EventLog).
func (s *Service) claimStreams(ctx context.Context, ids []string) error {
	wanted, err := s.opts.Events.ClaimStreams(ctx, ids)
	if err != nil {
		return fmt.Errorf("claiming stream requests: %w", err)
	}
	for _, id := range wanted {
		// Read under the lock: retainLocked clears it when the run ends.
		var logEvents func()
		s.mu.Lock()
		if a, ok := s.active[id]; ok {
			logEvents = a.logEvents
		}
		s.mu.Unlock()
		if logEvents != nil {
			logEvents()
		}
	}
	return nil
}

// Stream sends the run's events after ResumeParams.After to emit, each once
// and in order, the live ones as they come, and returns after the run's
// terminal event, or when ctx ends or emit fails (with that error). A run
// found finished whose log lacks its terminal event (nobody asked for its
// events while it ran, it finished before the log existed, or its replica
// died) ends with one made from its stored state: content, tools,
// references, metrics and status.
//
// Another replica's run is tailed by polling the log every
// Options.PollInterval: its writer flushes every Options.FlushInterval
// anyway, and polling one indexed range works alike on SQLite and
// PostgreSQL with no connection held per stream.
func (r *Replay) Stream(ctx context.Context, emit func(event.Event) error) error {
	s, next := r.s, r.p.After+1
	requested := false
	for {
		if j := s.journalOf(r.p.RunID); j != nil {
			// It executes here: the journal holds every event of the run.
			return j.follow(ctx, next, emit)
		}
		if s.opts.Events == nil {
			return nil // the run ended; without a log its events are gone
		}
		if !requested {
			// Ask the replica executing the run to log its events; it
			// finds the request within Options.CancelPoll. A run that
			// is no longer RUNNING has logged what it will.
			if _, err := s.opts.Events.RequestStream(ctx, r.p.RunID); err != nil {
				return fmt.Errorf("asking for the events of run %s: %w", r.p.RunID, err)
			}
			requested = true
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
	switch r.Type {
	case TypeTeam:
		e.TeamID = r.ComponentID
	case TypeWorkflow:
		e.WorkflowID = r.ComponentID
	default:
		e.AgentID = r.ComponentID
	}
	switch r.Status {
	case event.StatusPaused:
		e.Type, e.Content = event.RunPaused, r.Content
	case event.StatusCompleted:
		e.Type, e.Content, e.References, e.Tools = event.RunCompleted, r.Content, r.References, r.Tools
		e.ReasoningSteps = r.ReasoningSteps
		m := r.Metrics
		e.Metrics = &m
	case event.StatusCancelled:
		e.Type, e.Content = event.RunCancelled, r.Error
	default:
		e.Type, e.Content = event.RunError, r.Error
	}
	return e
}
