// Package guard provides guardrails: checks of a run's input (the user
// message, before the first model call) and output (the final answer, before
// it is stored and sent) declared under an agent's or team's guardrails.
// Builtin checks find personal data and secrets (block or redact), score
// prompt-injection heuristics and bound sizes; remote ones ask a model or an
// HTTP moderation endpoint. Every decision is reported as a GuardrailChecked
// event, which traces record as a guardrail.<name> span.
//
// A Set is compiled once per agent or team and snapshot and is safe for
// concurrent runs. An agent without guardrails gets no Set at all, so the
// path without guardrails costs nothing.
package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
)

// Direction says what a guardrail checks.
type Direction string

// Directions.
const (
	Input  Direction = "input"
	Output Direction = "output"
)

// ErrorKind classifies the RunError of a blocked run (event.Event.ErrorKind,
// the AgentOS error_type).
const ErrorKind = "guardrail"

// Decisions, as GuardrailCheck.Decision reports them.
const (
	DecisionAllow  = "allow"
	DecisionBlock  = "block"
	DecisionRedact = "redact"
)

// BlockError ends a run a guardrail blocked.
type BlockError struct {
	Guardrail string
	Direction Direction
	Reason    string
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("guardrail %s blocked the %s: %s", e.Guardrail, e.Direction, e.Reason)
}

// Who identifies the agent or team a Set guards, for its events.
type Who struct {
	Kind     spec.Kind // spec.KindAgent or spec.KindTeam
	Name     string
	Model    string // primary model id and provider, for RunStarted
	Provider string
}

// Options are the services remote guardrails use.
type Options struct {
	// Model resolves a model reference as agents' models are resolved
	// (Model documents, retries, fallbacks); needed by model guardrails.
	Model func(ref string) (model.Provider, error)
	// HTTP is the client of http guardrails: the egress-filtered client
	// tools use, so a guardrail reaches only what tools may.
	HTTP *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Set is the compiled guardrails of one agent or team.
type Set struct {
	who           Who
	input, output []*guardrail
	now           func() time.Time
}

var _ agent.Guardrails = (*Set)(nil)

type guardrail struct {
	name, kind, action, onError string
	check                       checker
}

// checker is one kind of check. It returns the verdict on text; an error
// means the check itself failed (a judge that timed out), which the
// guardrail's on_error decides.
type checker interface {
	check(ctx context.Context, text string, c *call) (verdict, error)
}

// call is what a check knows of the run.
type call struct {
	dir Direction
	who *Who
	// spent accumulates what model guardrails' judges used: the run's
	// tokens and cost include them.
	spent *event.Metrics
}

type verdict struct {
	block      bool
	text       string // the redacted text when it differs
	redacted   bool
	matched    []string
	redactions map[string]int
	score      float64
	reason     string
}

// New compiles g for who. It returns nil, and no error, when g declares no
// guardrail: callers leave the runner's Guardrails unset.
func New(g spec.Guardrails, who Who, o Options) (*Set, error) {
	if g.Empty() {
		return nil, nil
	}
	s := &Set{who: who, now: o.Now}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	if s.input, err = compileList(g.Input, Input, o); err != nil {
		return nil, err
	}
	if s.output, err = compileList(g.Output, Output, o); err != nil {
		return nil, err
	}
	return s, nil
}

func compileList(list []spec.Guardrail, dir Direction, o Options) ([]*guardrail, error) {
	out := make([]*guardrail, 0, len(list))
	for i := range list {
		g := &list[i]
		c := &guardrail{name: g.Label(), kind: g.Kind(), action: spec.GuardBlock}
		switch {
		case g.PII != nil:
			c.action = g.PII.Action
			if c.action == "" {
				c.action = spec.GuardRedact
			}
			kinds := allKinds
			if len(g.PII.Kinds) > 0 {
				kinds = kindBits(g.PII.Kinds)
			}
			c.check = &piiCheck{kinds: kinds, block: c.action == spec.GuardBlock}
		case g.Injection != nil:
			t := spec.DefaultInjectionThreshold
			if g.Injection.Threshold != nil {
				t = *g.Injection.Threshold
			}
			c.check = &injectionCheck{threshold: t}
		case g.Size != nil:
			c.check = &sizeCheck{max: g.Size.MaxBytes}
		case g.Model != nil:
			if o.Model == nil {
				return nil, fmt.Errorf("guardrail %s: no model layer to run a model guardrail", c.name)
			}
			p, err := o.Model(g.Model.Model)
			if err != nil {
				return nil, fmt.Errorf("guardrail %s: model %s: %w", c.name, g.Model.Model, err)
			}
			c.onError = g.Model.OnError
			c.check = &modelCheck{provider: p, prompt: g.Model.Prompt, timeout: orDefault(g.Model.Timeout.D())}
		case g.HTTP != nil:
			if o.HTTP == nil {
				return nil, fmt.Errorf("guardrail %s: no HTTP client to run an http guardrail", c.name)
			}
			c.onError = g.HTTP.OnError
			c.check = &httpCheck{client: o.HTTP, url: g.HTTP.URL, headers: g.HTTP.Headers, timeout: orDefault(g.HTTP.Timeout.D())}
		default:
			return nil, fmt.Errorf("%s guardrail %d has no kind", dir, i)
		}
		if c.onError == "" {
			c.onError = spec.GuardBlock
		}
		out = append(out, c)
	}
	return out, nil
}

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return spec.DefaultGuardTimeout
	}
	return d
}

// Run implements agent.Guardrails. With output guardrails the answer is not
// streamed as it is written: the run's RunContent deltas are held back, the
// whole answer is checked, then sent as one RunContent followed by
// RunCompleted. A client sees the answer later but never a part of it the
// guardrails would have stopped or redacted. Members' own events (depth > 0)
// pass through as they are; members have guardrails of their own.
func (s *Set) Run(ctx context.Context, in agent.Input, emit func(event.Event), next func(context.Context, agent.Input, func(event.Event)) *agent.Result) *agent.Result {
	start := s.now()
	var pending []event.Event
	var spent event.Metrics // judges' usage, added to the run's
	if len(s.input) > 0 {
		text, err := s.check(ctx, s.input, Input, in.Message, in, &spent, func(e event.Event) { pending = append(pending, e) })
		if err != nil {
			return s.blocked(in, emit, start, pending, spent, err)
		}
		in.Message = text
	}
	if len(s.output) == 0 && len(pending) == 0 {
		return next(ctx, in, emit)
	}
	var held *event.Event
	res := next(ctx, in, func(e event.Event) {
		if e.Depth == 0 {
			if e.Type.Terminal() && e.Metrics != nil && spent != (event.Metrics{}) {
				m := *e.Metrics
				m.Add(spent)
				e.Metrics = &m
			}
			switch {
			case e.Type == event.RunStarted && pending != nil:
				emit(e)
				for _, p := range pending {
					emit(p)
				}
				pending = nil
				return
			case len(s.output) > 0 && e.Type == event.RunContent:
				return
			case len(s.output) > 0 && e.Type == event.RunCompleted:
				held = &e
				return
			}
		}
		emit(e)
	})
	res.Metrics.Add(spent)
	if held == nil {
		return res
	}
	if res.Status != event.StatusCompleted {
		emit(*held) // cannot happen: a completed event ends a completed run
		return res
	}
	var judged event.Metrics
	text, err := s.check(ctx, s.output, Output, res.Content, in, &judged, emit)
	res.Metrics.Add(judged)
	if held.Metrics != nil {
		m := *held.Metrics
		m.Add(judged)
		held.Metrics = &m
	}
	if err != nil {
		res.Status, res.Err, res.ErrorKind, res.Content = event.StatusError, err, ErrorKind, ""
		e := *held
		e.Type, e.Content, e.ErrorKind, e.Tools, e.References, e.CreatedAt = event.RunError, err.Error(), ErrorKind, nil, nil, s.now()
		emit(e)
		return res
	}
	if text != "" {
		c := *held
		c.Type, c.Content, c.Metrics, c.Tools, c.References = event.RunContent, text, nil, nil, nil
		emit(c)
	}
	if text != res.Content {
		for i := len(res.Messages) - 1; i >= 0; i-- {
			if m := &res.Messages[i]; m.Role == model.RoleAssistant && m.Content == res.Content {
				m.Content = text
				break
			}
		}
		res.Content = text
	}
	held.Content = text
	emit(*held)
	return res
}

// base is an event of the guarded run itself.
func (s *Set) base(t event.Type, in agent.Input) event.Event {
	e := event.Event{Type: t, RunID: in.RunID, SessionID: in.SessionID, CreatedAt: s.now()}
	if s.who.Kind == spec.KindTeam {
		e.TeamID = s.who.Name
	} else {
		e.AgentID = s.who.Name
	}
	return e
}

// blocked ends a run whose input a guardrail blocked: it never started, but
// its stream still has the RunStarted and RunError every run has.
func (s *Set) blocked(in agent.Input, emit func(event.Event), start time.Time, pending []event.Event, spent event.Metrics, err error) *agent.Result {
	started := s.base(event.RunStarted, in)
	started.CreatedAt = start
	started.Model, started.Provider = s.who.Model, s.who.Provider
	emit(started)
	for _, p := range pending {
		emit(p)
	}
	res := &agent.Result{
		RunID: in.RunID, Input: in.Message, Runner: s.who.Name, Status: event.StatusError, Err: err, ErrorKind: ErrorKind,
		Model: s.who.Model, Provider: s.who.Provider, Metrics: event.Metrics{Duration: s.now().Sub(start)},
	}
	res.Metrics.Add(spent)
	e := s.base(event.RunError, in)
	m := res.Metrics
	e.Content, e.ErrorKind, e.Metrics = err.Error(), ErrorKind, &m
	emit(e)
	return res
}

// check runs list on text in order, reporting each decision, and returns
// the text as redacted, or a *BlockError from the first guardrail that
// blocks.
func (s *Set) check(ctx context.Context, list []*guardrail, dir Direction, text string, in agent.Input, spent *event.Metrics, emit func(event.Event)) (string, error) {
	c := &call{dir: dir, who: &s.who, spent: spent}
	for _, g := range list {
		t0 := s.now()
		v, err := g.check.check(ctx, text, c)
		gc := &event.GuardrailCheck{Name: g.name, Kind: g.kind, Direction: string(dir), Action: g.action, Decision: DecisionAllow, StartedAt: t0}
		var blockErr error
		switch {
		case err != nil:
			gc.Error = err.Error()
			if g.onError != spec.GuardAllow {
				gc.Decision, gc.Reason = DecisionBlock, "the check failed and on_error is block: "+err.Error()
				blockErr = &BlockError{Guardrail: g.name, Direction: dir, Reason: gc.Reason}
			} else {
				gc.Reason = "the check failed and on_error is allow: " + err.Error()
			}
		case v.block:
			gc.Decision, gc.Reason = DecisionBlock, v.reason
			blockErr = &BlockError{Guardrail: g.name, Direction: dir, Reason: v.reason}
		case v.redacted:
			gc.Decision, gc.Reason = DecisionRedact, v.reason
			text = v.text
		default:
			gc.Reason = v.reason
		}
		gc.Matched, gc.Redactions, gc.Score = v.matched, v.redactions, v.score
		gc.Duration = s.now().Sub(t0)
		e := s.base(event.GuardrailChecked, in)
		e.Guardrail = gc
		emit(e)
		if blockErr != nil {
			return "", blockErr
		}
	}
	return text, nil
}

// --- builtin checks ---

type piiCheck struct {
	kinds kindSet
	block bool
}

func (p *piiCheck) check(_ context.Context, text string, _ *call) (verdict, error) {
	ms := findPII(text, p.kinds)
	if len(ms) == 0 {
		return verdict{}, nil
	}
	v := verdict{redactions: map[string]int{}}
	for _, m := range ms {
		if v.redactions[m.Kind] == 0 {
			v.matched = append(v.matched, m.Kind)
		}
		v.redactions[m.Kind]++
	}
	slices.Sort(v.matched)
	// The reason names kinds, never the data: it reaches the client, the
	// stored run and traces.
	if p.block {
		v.block, v.reason, v.redactions = true, "it contains personal data or secrets ("+strings.Join(v.matched, ", ")+")", nil
		return v, nil
	}
	v.redacted, v.text = true, Redact(text, ms)
	v.reason = "redacted " + strings.Join(v.matched, ", ")
	return v, nil
}

type injectionCheck struct{ threshold float64 }

func (c *injectionCheck) check(_ context.Context, text string, _ *call) (verdict, error) {
	score, rules := InjectionScore(text)
	v := verdict{score: score, matched: rules}
	if score >= c.threshold {
		v.block = true
		v.reason = fmt.Sprintf("it looks like a prompt injection (score %.2f, threshold %.2f: %s)", score, c.threshold, strings.Join(rules, ", "))
	}
	return v, nil
}

type sizeCheck struct{ max int }

func (c *sizeCheck) check(_ context.Context, text string, _ *call) (verdict, error) {
	if len(text) > c.max {
		return verdict{block: true, reason: fmt.Sprintf("it is %d bytes long; the limit is %d (max_bytes)", len(text), c.max)}, nil
	}
	return verdict{}, nil
}

// timeoutError turns a deadline into a message that names the limit.
func timeoutError(ctx context.Context, what string, d time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s did not answer within %s (timeout)", what, d)
	}
	return err
}
