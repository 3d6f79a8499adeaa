package team

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
)

// A team run pauses when a member pauses on tool calls: its own state (which
// member, which task, what the other members answered, the coordinate
// leader's held turn) and the paused members' states are stored with the
// run, and the run continues from them: the paused members continue first,
// then the team finishes as it would have.

// teamState is a paused team's own state.
type teamState struct {
	Mode string `json:"mode"`
	// route: the member routed to, its task and run, the leader's call.
	Member    string          `json:"member,omitempty"`
	Task      string          `json:"task,omitempty"`
	MemberRun string          `json:"member_run,omitempty"`
	Call      *event.ToolCall `json:"call,omitempty"`
	Metrics   event.Metrics   `json:"metrics"`
	// broadcast: the answers of members that finished, and the runs of
	// those that paused, by member name.
	Answers map[string]string `json:"answers,omitempty"`
	Runs    map[string]string `json:"runs,omitempty"`
	// coordinate: the leader's delegations held by paused members, by the
	// leader's call id.
	Delegations map[string]delegation `json:"delegations,omitempty"`
}

// delegation is a coordinate leader's call whose member paused.
type delegation struct {
	Member    string `json:"member"`
	Task      string `json:"task"`
	MemberRun string `json:"member_run"`
}

func (r *teamRun) delegate(callID string, d delegation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.delegations == nil {
		r.delegations = map[string]delegation{}
	}
	r.delegations[callID] = d
}

// memberPath tags a member's held call with who holds it: the member, and
// within a member team its own member ("crew/writer").
func memberPath(name, inner string) string {
	if inner == "" {
		return name
	}
	return name + "/" + inner
}

// memberResume is the resume of member name (run runID): its stored state
// and the decisions of the calls it holds.
func (r *teamRun) memberResume(name, runID string) *agent.Resume {
	rs := r.in.Resume
	m := rs.Members[runID]
	if m == nil {
		m = &agent.Resume{}
	}
	out := *m
	out.Decided = nil
	for _, d := range rs.Decided {
		switch {
		case d.Member == name:
			d.Member = ""
		case strings.HasPrefix(d.Member, name+"/"):
			d.Member = strings.TrimPrefix(d.Member, name+"/")
		default:
			continue
		}
		out.Decided = append(out.Decided, d)
	}
	return &out
}

// pause ends a route or broadcast run PAUSED on its members' pending calls.
func (r *teamRun) pause(start time.Time, m event.Metrics, st teamState, pending []approval.Need) *agent.Result {
	st.Metrics = m
	m.Duration = r.t.cfg.Now().Sub(start)
	raw, _ := json.Marshal(st)
	r.mu.Lock()
	held := &agent.Resume{Team: raw, Members: maps.Clone(r.held)}
	r.mu.Unlock()
	res := &agent.Result{RunID: r.in.RunID, Status: event.StatusPaused, Pending: pending, Held: held, Metrics: m,
		Model: r.t.cfg.Model, Provider: r.t.cfg.Vendor, Continued: r.in.Resume != nil}
	e := r.event(event.RunPaused)
	e.Content = fmt.Sprintf("the run is paused: %d tool call(s) of its members need a decision", len(pending))
	for _, n := range pending {
		e.Paused = append(e.Paused, n.Exec)
	}
	metrics := m
	e.Metrics = &metrics
	r.send(e)
	return res
}

// coordinate runs the leader's agent loop; a delegation whose member paused
// pauses the leader, and the team with it.
func (r *teamRun) coordinate(ctx context.Context, in agent.Input) *agent.Result {
	res := r.t.leader.Execute(ctx, in, func(e event.Event) { r.send(r.own(e)) })
	if res.Status == event.StatusPaused {
		r.keepDelegations(res, nil)
	}
	return res
}

// keepDelegations adds the team's state to a paused leader's result.
func (r *teamRun) keepDelegations(res *agent.Result, earlier map[string]delegation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := teamState{Mode: spec.ModeCoordinate, Delegations: maps.Clone(earlier)}
	for id, d := range r.delegations {
		if st.Delegations == nil {
			st.Delegations = map[string]delegation{}
		}
		st.Delegations[id] = d
	}
	if res.Held == nil {
		res.Held = &agent.Resume{Messages: res.Messages, Tools: res.Tools, Metrics: res.Metrics, Thoughts: res.ReasoningSteps}
	}
	res.Held.Team, _ = json.Marshal(st)
	res.Held.Members = maps.Clone(r.held)
}

// resume continues a paused team run.
func (r *teamRun) resume(ctx context.Context) *agent.Result {
	t := r.t
	start := t.cfg.Now()
	var st teamState
	if err := json.Unmarshal(r.in.Resume.Team, &st); err != nil {
		return r.finish(ctx, start, event.Metrics{}, "", fmt.Errorf("reading the paused team's state: %w", err), "team")
	}
	if st.Mode != spec.ModeCoordinate {
		e := r.event(event.RunContinued)
		e.Model, e.Provider = t.cfg.Model, t.cfg.Vendor
		e.Paused = slices.Clone(r.in.Resume.Decided)
		r.send(e)
	}
	switch st.Mode {
	case spec.ModeRoute:
		res := r.runMemberAs(ctx, st.Member, st.Task, st.MemberRun, r.memberResume(st.Member, st.MemberRun), true)
		if res.Status == event.StatusPaused {
			return r.pause(start, st.Metrics, st, res.Pending)
		}
		rec := event.ToolCall{ID: "", Name: RouteTool}
		if st.Call != nil {
			rec = *st.Call
		}
		return r.routed(ctx, start, st.Metrics, st.Member, rec, res)
	case spec.ModeBroadcast:
		results := make([]*agent.Result, len(t.names))
		runIDs := make([]string, len(t.names))
		var wg sync.WaitGroup
		for i, name := range t.names {
			if answer, ok := st.Answers[name]; ok {
				results[i] = &agent.Result{Status: event.StatusCompleted, Content: answer}
				continue
			}
			runIDs[i] = st.Runs[name]
			wg.Go(func() {
				results[i] = r.runMemberAs(ctx, name, r.in.Message, runIDs[i], r.memberResume(name, runIDs[i]), false)
			})
		}
		wg.Wait()
		for i, res := range results {
			if res.Status != event.StatusCompleted && res.Status != event.StatusPaused && res.Err != nil {
				results[i] = &agent.Result{Status: event.StatusCompleted, Content: fmt.Sprintf("(no answer: %v)", res.Err)}
			}
		}
		return r.synthesize(ctx, start, results, runIDs)
	}
	return r.resumeCoordinate(ctx, st)
}

// resumeCoordinate continues the members the leader's delegations wait on,
// then the leader with their answers as the delegations' results.
func (r *teamRun) resumeCoordinate(ctx context.Context, st teamState) *agent.Result {
	rs := r.in.Resume
	leader := &agent.Resume{Messages: rs.Messages, Tools: rs.Tools, Metrics: rs.Metrics, Done: slices.Clone(rs.Done), Thoughts: rs.Thoughts}
	for _, d := range rs.Decided {
		if d.Member == "" {
			leader.Decided = append(leader.Decided, d) // the leader's own calls
		}
	}
	ids := slices.Sorted(maps.Keys(st.Delegations))
	results := make([]*agent.Result, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		d := st.Delegations[id]
		wg.Go(func() {
			results[i] = r.runMemberAs(ctx, d.Member, d.Task, d.MemberRun, r.memberResume(d.Member, d.MemberRun), false)
		})
	}
	wg.Wait()
	still := map[string]delegation{}
	var pending []approval.Need
	for i, id := range ids {
		d, res := st.Delegations[id], results[i]
		if res.Status == event.StatusPaused {
			still[id] = d
			pending = append(pending, res.Pending...)
			continue
		}
		answer, err := delegationAnswer(d.Member, res)
		msg := model.Message{Role: model.RoleTool, ToolCallID: id, Name: DelegateTool, Content: answer}
		if err != nil {
			msg.IsError, msg.Content = true, "Error: "+err.Error()
		}
		leader.Done = append(leader.Done, msg)
	}
	if len(pending) > 0 {
		// A member paused again: the leader stays where it was.
		res := &agent.Result{RunID: r.in.RunID, Status: event.StatusPaused, Pending: pending, Held: leader,
			Metrics: rs.Metrics, Model: r.t.cfg.Model, Provider: r.t.cfg.Vendor, Continued: true}
		r.keepDelegations(res, still)
		e := r.event(event.RunPaused)
		e.Content = fmt.Sprintf("the run is paused: %d tool call(s) of its members need a decision", len(pending))
		for _, n := range pending {
			e.Paused = append(e.Paused, n.Exec)
		}
		r.send(e)
		return res
	}
	in := r.in
	in.Resume = leader
	return r.coordinate(ctx, in)
}
