package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/event"
)

// Pause is the held state of an agent or team run PAUSED on tool calls:
// what it needs to continue on any replica (stored with the run, never only
// in memory).
type Pause struct {
	RunID string `json:"-"`
	// Held is the runner's state (a team's includes its members').
	Held *agent.Resume `json:"held"`
	// Calls are the held calls the client sees and decides, team members'
	// tagged with the member.
	Calls []event.ToolExecution `json:"calls"`
	// Workflow marks a workflow run paused at approval steps: each call is
	// a step (tool_call_id is its path), continued through its checkpoint
	// (Continue), not through held tool calls.
	Workflow bool `json:"workflow,omitempty"`
}

// Pauser keeps paused runs (store.DB).
type Pauser interface {
	// SavePause stores p and the inbox records of its calls that need a
	// confirmation, in one transaction.
	SavePause(ctx context.Context, p *Pause, records []approval.Record) error
	// LoadPause returns run runID's held state, ErrNotFound without one.
	LoadPause(ctx context.Context, runID string) (*Pause, error)
	// RunApprovals returns the inbox records of run runID.
	RunApprovals(ctx context.Context, runID string) ([]approval.Record, error)
	// ContinuePaused moves run runID from PAUSED to status (RUNNING, claimed
	// by this replica, or PENDING for a job), stores calls as its held
	// calls, records the confirmations given in calls on its pending inbox
	// records (decided by by), and drops the events logged before the
	// pause (the continued run's stream starts afresh). A run that is not
	// PAUSED is an error wrapping ErrNotFound.
	ContinuePaused(ctx context.Context, runID string, calls []event.ToolExecution, status event.Status, by string) (*Run, error)
	// CancelPaused ends PAUSED run runID CANCELLED with reason and rejects
	// its pending approvals in by's name; a run that is not PAUSED is an
	// error wrapping ErrNotFound.
	CancelPaused(ctx context.Context, runID, reason, by string) (*Run, error)
}

// CancelPaused cancels a PAUSED agent or team run: nothing executes it, so
// cancelling ends it at once, and its pending approvals are rejected. It
// reports false for a run that is not paused.
func (s *Service) CancelPaused(ctx context.Context, runID, by string) (bool, error) {
	ps, ok := s.opts.Store.(Pauser)
	if !ok {
		return false, nil
	}
	r, err := ps.CancelPaused(ctx, runID, ErrCancelled.Error(), by)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A workflow step's run: the workflow goes on, and the step fails.
	if err := s.reopenWorkflow(ctx, r); err != nil {
		s.log.Error("resuming the workflow of a cancelled step run", "run_id", r.ID, "err", err)
	}
	return true, nil
}

// Announcer is told of new inbox records (cmd/troupe schedules their
// timeouts and webhook deliveries through the job engine).
type Announcer interface {
	Announce(ctx context.Context, records []approval.Record) error
}

// ErrForbidden reports a decision the caller may not take (it is not among
// the call's approvers); the HTTP layer answers 403.
var ErrForbidden = errors.New("forbidden")

// ErrConflict reports a request that does not fit the run's state (continuing
// a run that is not paused); the HTTP layer answers 409.
var ErrConflict = errors.New("conflict")

// savePause stores the held state of a run the runner paused, with its
// inbox records, and announces them.
func (t *Turn) savePause(ctx context.Context, res *agent.Result) error {
	return t.savePauseOf(ctx, res, t.run.ID, t.run.Type, t.run.ComponentID)
}

// saveHeldSteps stores, as paused runs of their own with inbox records, the
// agent and team runs of a PAUSED workflow's steps that wait for tool
// decisions (through nested workflows): each continues on its own, and its
// completion resumes the workflow (reopenWorkflow).
func (t *Turn) saveHeldSteps(ctx context.Context, results []*agent.Result, seen map[string]member) error {
	for _, m := range results {
		if m == nil || m.Status != event.StatusPaused {
			continue
		}
		typ := seen[m.RunID].typ
		if typ == TypeWorkflow {
			if err := t.saveHeldSteps(ctx, m.Members, seen); err != nil {
				return err
			}
			continue
		}
		if len(m.Pending) == 0 {
			continue
		}
		if typ == "" {
			typ = TypeAgent
		}
		if err := t.savePauseOf(ctx, m, m.RunID, typ, m.Runner); err != nil {
			return fmt.Errorf("storing the paused state of step run %s: %w", m.RunID, err)
		}
	}
	return nil
}

// HeldReopener reopens a PAUSED workflow run whose step's run, paused on
// tool decisions, has ended (store.DB).
type HeldReopener interface {
	// ReopenHeld sets PAUSED workflow run id PENDING; a run that is not a
	// PAUSED workflow (or that another caller reopened) is an error
	// wrapping ErrNotFound.
	ReopenHeld(ctx context.Context, id string) (*Run, error)
	// GetRun returns run id if f lets the caller see it.
	GetRun(ctx context.Context, id string, f Filter) (*Run, error)
}

// reopenWorkflow queues the workflow that run r is a step of, now that r,
// continued after a pause on tool decisions, has ended: the workflow
// resumes from its checkpoints on any replica and takes r's answer as the
// step's output. A step of a nested workflow resumes the outermost one,
// which runs the nested one.
func (s *Service) reopenWorkflow(ctx context.Context, r *Run) error {
	ro, ok := s.opts.Store.(HeldReopener)
	if !ok || s.opts.Requeue == nil || r.ParentRunID == "" {
		return nil
	}
	id := r.ParentRunID
	for range 16 { // nesting is bounded; so is this walk
		p, err := ro.GetRun(ctx, id, Filter{})
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if p.Type != TypeWorkflow {
			return nil // a team's member: the team continues it
		}
		if p.ParentRunID == "" {
			break
		}
		id = p.ParentRunID
	}
	w, err := ro.ReopenHeld(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil // not paused: running, or reopened by another caller
	}
	if err != nil {
		return err
	}
	if err := s.opts.Requeue.Requeue(ctx, w); err != nil {
		return fmt.Errorf("queueing workflow run %s: %w", id, err)
	}
	return nil
}

// savePauseOf stores the held state of run runID (of type typ, running
// component), paused by its runner, with its inbox records, and announces
// them.
func (t *Turn) savePauseOf(ctx context.Context, res *agent.Result, runID, typ, component string) error {
	ps, ok := t.s.opts.Store.(Pauser)
	if !ok {
		return errors.New("this server cannot pause runs: its store keeps no paused state")
	}
	p := &Pause{RunID: runID, Held: res.Held, Workflow: typ == TypeWorkflow}
	if p.Held == nil && !p.Workflow {
		p.Held = &agent.Resume{Messages: res.Messages, Tools: res.Tools, Metrics: res.Metrics}
	}
	var recs []approval.Record
	now := time.Now().UTC()
	for _, n := range res.Pending {
		p.Calls = append(p.Calls, n.Exec)
		if !n.Exec.RequiresConfirmation {
			continue
		}
		rec := approval.Record{ID: n.Exec.ApprovalID, RunID: runID, SessionID: t.session.ID, ToolCallID: n.Exec.ToolCallID,
			TargetKind: typ, TargetName: component, UserID: t.run.UserID, Tool: n.Exec.ToolName, Args: n.Exec.ToolArgs,
			Reason: n.Exec.Reason, Approvers: n.Approvers, Status: approval.StatusPending, Default: n.Default, CreatedAt: now}
		if n.Timeout > 0 {
			rec.Deadline = now.Add(n.Timeout)
		}
		recs = append(recs, rec)
	}
	if err := ps.SavePause(ctx, p, recs); err != nil {
		return err
	}
	if a := t.s.opts.Announcer; a != nil && len(recs) > 0 {
		if err := a.Announce(ctx, recs); err != nil {
			// The records are stored: the inbox shows them, only their
			// timeouts or webhook are late.
			t.s.log.Error("announcing approvals", "run_id", runID, "err", err)
		}
	}
	return nil
}

// resumeOf builds the runner's Resume of a continued run: its held state,
// each confirmation taken from its inbox record.
func (s *Service) resumeOf(ctx context.Context, runID string) (*agent.Resume, error) {
	ps, ok := s.opts.Store.(Pauser)
	if !ok {
		return nil, nil
	}
	p, err := ps.LoadPause(ctx, runID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	recs, err := ps.RunApprovals(ctx, runID)
	if err != nil {
		return nil, err
	}
	merge(p.Calls, recs)
	rs := p.Held
	if rs == nil {
		rs = &agent.Resume{}
	}
	rs.Decided = p.Calls
	return rs, nil
}

// merge takes each call's confirmation from its decided inbox record.
func merge(calls []event.ToolExecution, recs []approval.Record) {
	byID := map[string]*approval.Record{}
	for i := range recs {
		byID[recs[i].ID] = &recs[i]
	}
	for i := range calls {
		c := &calls[i]
		r := byID[c.ApprovalID]
		if r == nil || r.Status == approval.StatusPending {
			continue
		}
		ok := r.Approved()
		at := r.DecidedAt
		c.Confirmed, c.ConfirmationNote, c.DecidedBy, c.DecidedAt = &ok, r.Comment, r.DecidedBy, &at
		if r.Status == approval.StatusExpired {
			c.ConfirmationNote = fmt.Sprintf("no decision before the deadline; the default (%s) applied", r.Default)
		}
	}
}

// ContinueParams continue a paused agent or team run.
type ContinueParams struct {
	Run *Run
	// Calls are the client's decisions (AgentOS ToolExecution): matched to
	// the held calls by tool_call_id.
	Calls []event.ToolExecution
	// By names who decided (the key's user or name), for the inbox.
	By string
	// Viewer is who decides, for confirmations: a call that needs one may
	// be confirmed or rejected here only by one of its approvers (nil: an
	// administrator, or an open server).
	Viewer *approval.Viewer
	// Background queues the continued run for a job instead of returning a
	// turn to execute here.
	Background bool
	Stream     bool
}

// ContinuePaused continues a PAUSED agent or team run with the client's
// decisions: every held call must be decided (a confirmation decided in the
// inbox counts), else ErrInvalid naming what is missing; a run that is not
// paused is ErrConflict. It returns a turn to execute here, or (Background)
// the run queued for any replica's worker.
func (s *Service) ContinuePaused(ctx context.Context, p ContinueParams) (*Turn, *Run, error) {
	ps, ok := s.opts.Store.(Pauser)
	if !ok {
		return nil, nil, errors.New("this server cannot continue paused runs")
	}
	if p.Run.Status != event.StatusPaused {
		return nil, nil, &Error{Kind: ErrConflict, Msg: fmt.Sprintf("run %s is %s, not PAUSED: only a paused run can be continued", p.Run.ID, p.Run.Status)}
	}
	held, err := ps.LoadPause(ctx, p.Run.ID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, &Error{Kind: ErrConflict, Msg: fmt.Sprintf("run %s holds no tool calls to continue", p.Run.ID)}
	}
	if err != nil {
		return nil, nil, err
	}
	recs, err := ps.RunApprovals(ctx, p.Run.ID)
	if err != nil {
		return nil, nil, err
	}
	heldIDs := make(map[string]bool, len(held.Calls))
	var ids []string
	for _, c := range held.Calls {
		heldIDs[c.ToolCallID] = true
		ids = append(ids, c.ToolCallID)
	}
	given := map[string]event.ToolExecution{}
	for _, c := range p.Calls {
		if !heldIDs[c.ToolCallID] {
			// A decision for a call the run does not hold would be
			// dropped silently; the client has the wrong id.
			return nil, nil, &Error{Kind: ErrInvalid, Msg: fmt.Sprintf("tool_call_id %q is not held by run %s (it holds %s): send the ids RunPaused listed",
				c.ToolCallID, p.Run.ID, strings.Join(ids, ", "))}
		}
		given[c.ToolCallID] = c
	}
	byApproval := map[string]*approval.Record{}
	for i := range recs {
		byApproval[recs[i].ID] = &recs[i]
	}
	for _, c := range held.Calls {
		g, ok := given[c.ToolCallID]
		rec := byApproval[c.ApprovalID]
		if !ok || g.Confirmed == nil || rec == nil || rec.Status != approval.StatusPending {
			continue
		}
		if !p.Viewer.CanDecide(rec) {
			return nil, nil, &Error{Kind: ErrForbidden, Msg: fmt.Sprintf("tool call %s (%s) needs a decision by its approvers (users %v, scopes %v); this key is not one of them: leave it to the approvals inbox",
				c.ToolCallID, c.ToolName, rec.Approvers.Users, rec.Approvers.Scopes)}
		}
	}
	calls := held.Calls
	for i := range calls {
		c := &calls[i]
		g, ok := given[c.ToolCallID]
		if !ok {
			continue
		}
		if g.Confirmed != nil {
			c.Confirmed, c.ConfirmationNote = g.Confirmed, g.ConfirmationNote
		}
		if g.ToolArgs != nil {
			c.ToolArgs = g.ToolArgs
		}
		if g.Result != nil {
			c.Result = g.Result
		}
		for j := range c.UserInputSchema {
			for _, f := range g.UserInputSchema {
				if f.Name == c.UserInputSchema[j].Name && f.Value != nil {
					c.UserInputSchema[j].Value = f.Value
				}
			}
		}
	}
	decided := append([]event.ToolExecution(nil), calls...)
	merge(decided, recs)
	var missing []string
	for _, c := range decided {
		if m := c.Missing(); m != "" {
			missing = append(missing, fmt.Sprintf("%s %s (%s)", c.ToolName, c.ToolCallID, m))
		}
	}
	if len(missing) > 0 {
		return nil, nil, &Error{Kind: ErrInvalid, Msg: "these tool calls still need a decision: " + strings.Join(missing, ", ") +
			"; send each in tools with confirmed (true or false), its result (external tools) or its user_input_schema values"}
	}
	status := event.StatusRunning
	if p.Background {
		status = event.StatusPending
	}
	r, err := ps.ContinuePaused(ctx, p.Run.ID, calls, status, p.By)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, &Error{Kind: ErrConflict, Msg: fmt.Sprintf("run %s was continued already", p.Run.ID)}
	}
	if err != nil {
		return nil, nil, err
	}
	if p.Background {
		if s.opts.Requeue == nil {
			return nil, nil, errors.New("this server cannot queue runs: it has no job engine")
		}
		if err := s.opts.Requeue.Requeue(ctx, r); err != nil {
			return nil, nil, fmt.Errorf("queueing run %s: %w", r.ID, err)
		}
		return nil, r, nil
	}
	t, err := s.turnOf(ctx, r, p.Stream)
	return t, r, err
}

// turnOf builds the turn that executes claimed run r, continued from its
// held state; a target gone since ends it ERROR (nil turn).
func (s *Service) turnOf(ctx context.Context, r *Run, stream bool) (*Turn, error) {
	kind := KindOf(r.Type)
	p := Params{Kind: kind, Name: r.ComponentID, Message: r.Input, SessionID: r.SessionID, UserID: r.UserID, BoundUser: true, Stream: stream, KeepEvents: !stream}
	tg, err := s.opts.Targets.Pin(kind, r.ComponentID)
	if err != nil {
		r.Status, r.Error = event.StatusError, fmt.Sprintf("%s %q is not available any more: %v", kind.Lower(), r.ComponentID, err)
		if ferr := s.opts.Store.FinishRun(context.WithoutCancel(ctx), r); ferr != nil {
			return nil, fmt.Errorf("finishing run %s: %w", r.ID, ferr)
		}
		return nil, &Error{Kind: ErrConflict, Msg: r.Error}
	}
	resume, err := s.resumeOf(ctx, r.ID)
	if err != nil {
		tg.Release()
		return nil, err
	}
	t := &Turn{s: s, p: p, runner: tg.Runner, release: tg.Release, run: r, resume: resume,
		session: &Session{ID: r.SessionID, Type: r.Type, ComponentID: r.ComponentID, UserID: r.UserID}}
	r.SpecVersion = tg.Version
	t.begin(ctx)
	return t, nil
}

// ResumeDecided queues paused run runID once every held call is decided
// in the inbox (and none waits for the client: external results, user
// input); it reports whether it queued the run.
func (s *Service) ResumeDecided(ctx context.Context, runID, by string) (bool, error) {
	ps, ok := s.opts.Store.(Pauser)
	if !ok || s.opts.Requeue == nil {
		return false, nil
	}
	held, err := ps.LoadPause(ctx, runID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	recs, err := ps.RunApprovals(ctx, runID)
	if err != nil {
		return false, err
	}
	if held.Workflow {
		return s.continueDecidedStep(ctx, runID, held, recs)
	}
	calls := append([]event.ToolExecution(nil), held.Calls...)
	merge(calls, recs)
	for _, c := range calls {
		if c.Missing() != "" {
			return false, nil
		}
	}
	r, err := ps.ContinuePaused(ctx, runID, held.Calls, event.StatusPending, by)
	if errors.Is(err, ErrNotFound) {
		return false, nil // continued already
	}
	if err != nil {
		return false, err
	}
	if err := s.opts.Requeue.Requeue(ctx, r); err != nil {
		return false, fmt.Errorf("queueing run %s: %w", runID, err)
	}
	return true, nil
}

// stepDecision is an approval step's output as the workflow runner reads it
// (workflow.Decision; engine/workflow builds on this package, so the shape
// is repeated here).
type stepDecision struct {
	Approved bool   `json:"approved"`
	Comment  string `json:"comment,omitempty"`
}

// continueDecidedStep continues PAUSED workflow run runID at the first of its
// waiting approval steps whose inbox record is decided: the decision becomes
// the step's output in the same atomic reopen as POST …/continue. It reports
// false when no step is decided, or the run is not paused (continued
// already, or running: it finds the decision when it pauses again).
func (s *Service) continueDecidedStep(ctx context.Context, runID string, held *Pause, recs []approval.Record) (bool, error) {
	byID := map[string]*approval.Record{}
	for i := range recs {
		byID[recs[i].ID] = &recs[i]
	}
	for _, c := range held.Calls {
		r := byID[c.ApprovalID]
		if r == nil || r.Status == approval.StatusPending {
			continue
		}
		d := stepDecision{Approved: r.Approved(), Comment: r.Comment}
		if r.Status == approval.StatusExpired {
			d.Comment = fmt.Sprintf("no decision before the deadline; the default (%s) applied", r.Default)
		}
		out, err := json.Marshal(d)
		if err != nil {
			return false, err
		}
		_, err = s.Continue(ctx, runID, c.ToolCallID, out)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	return false, nil
}
