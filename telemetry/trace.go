package telemetry

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/troupehq/troupe/engine/event"
)

// DefaultMaxAttribute bounds one attribute value (tool arguments and results,
// inputs) so traces stay small and never carry whole documents.
const DefaultMaxAttribute = 1024

// RunInfo identifies the run a trace describes.
type RunInfo struct {
	Kind        string // agent or team
	Target      string // its name
	RunID       string
	SessionID   string
	UserID      string
	SpecVersion string
	Input       string
	Model       string
	Provider    string
}

// Trace builds the spans of one run from its events: the run itself, each
// model request, tool call and knowledge search, and team members' runs. Safe
// for concurrent use (parallel tool calls report from several goroutines).
type Trace struct {
	mu      sync.Mutex
	maxAttr int
	// content is how much of the conversation model-request spans record;
	// the zero value records none.
	content  Content
	root     Span
	spans    []Span
	open     map[string]int // tool call id → index in spans
	runs     map[string]int // member run id → index in spans
	memberOf map[string]string
	steps    map[string]int // workflow step (name#iteration) → index in spans
}

// NewTrace starts the root span of a run now, always in a new trace of its
// own. link is the caller's span (from its traceparent), or the zero Parent:
// it is recorded on the root span (LinkTraceIDAttribute,
// LinkSpanIDAttribute) as a link, never used as the trace or parent id.
// A trace id is all a reader needs to ask for a trace, and a caller can send
// any id; were the run to join the caller's trace, a caller holding another
// user's trace id would add its spans to that trace and so be counted among
// its owners.
func NewTrace(info RunInfo, link Parent, start time.Time, maxAttr int) *Trace {
	if maxAttr <= 0 {
		maxAttr = DefaultMaxAttribute
	}
	t := &Trace{maxAttr: maxAttr, open: map[string]int{}, runs: map[string]int{}, memberOf: map[string]string{}, steps: map[string]int{}}
	t.root = Span{
		TraceID: NewTraceID(), SpanID: NewSpanID(), Name: info.Kind + ".run " + info.Target, Kind: KindRun,
		Start: start, RunID: info.RunID, SessionID: info.SessionID, UserID: info.UserID, Status: StatusOK,
		Attributes: map[string]string{"troupe.kind": info.Kind, "troupe.target": info.Target, "troupe.spec_version": info.SpecVersion,
			"model": info.Model, "provider": info.Provider, InputAttribute: t.clip(info.Input), RootAttribute: "true"},
	}
	if link.TraceID != "" {
		t.root.Attributes[LinkTraceIDAttribute], t.root.Attributes[LinkSpanIDAttribute] = link.TraceID, link.SpanID
	}
	if info.Kind == "team" {
		t.root.TeamID = info.Target
	} else {
		t.root.AgentID = info.Target
	}
	return t
}

// TraceID returns the trace's id.
func (t *Trace) TraceID() string { return t.root.TraceID }

// SpanID returns the root span's id (for traceparent headers).
func (t *Trace) SpanID() string { return t.root.SpanID }

func (t *Trace) clip(s string) string {
	if len(s) <= t.maxAttr {
		return s
	}
	cut := t.maxAttr
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func (t *Trace) child(kind, name string, parent string, start time.Time) Span {
	return Span{TraceID: t.root.TraceID, SpanID: NewSpanID(), ParentID: parent, Name: name, Kind: kind, Start: start,
		RunID: t.root.RunID, SessionID: t.root.SessionID, UserID: t.root.UserID, AgentID: t.root.AgentID, TeamID: t.root.TeamID,
		Status: StatusOK, Attributes: map[string]string{}}
}

// parentOf returns the span id of the run an event belongs to.
func (t *Trace) parentOf(e event.Event) string {
	if e.Depth > 0 {
		if i, ok := t.runs[e.RunID]; ok {
			return t.spans[i].SpanID
		}
	}
	return t.root.SpanID
}

// Observe records one event of the run (or of its members).
func (t *Trace) Observe(e event.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Type {
	case event.StepStarted:
		s := t.child(KindStep, "workflow.step "+e.Step, t.openContainer(), e.CreatedAt)
		s.Attributes["troupe.step"], s.Attributes["troupe.step_type"] = e.Step, e.StepType
		s.Attributes["troupe.iteration"] = strconv.Itoa(e.Iteration)
		t.steps[stepKey(e)] = len(t.spans)
		t.spans = append(t.spans, s)
	case event.StepCompleted, event.StepError:
		i, ok := t.steps[stepKey(e)]
		if !ok {
			return
		}
		delete(t.steps, stepKey(e))
		t.spans[i].End = e.CreatedAt
		if e.Type == event.StepError {
			t.spans[i].Status, t.spans[i].StatusMessage = StatusError, t.clip(e.Content)
		}
	case event.RunStarted:
		if e.Depth == 0 {
			return
		}
		if i, ok := t.steps[stepKey(e)]; ok && e.Step != "" {
			// The agent, team or workflow a workflow step runs.
			s := t.child(KindRun, "step.run "+e.Member, t.spans[i].SpanID, e.CreatedAt)
			s.AgentID, s.TeamID = e.AgentID, e.TeamID
			s.Attributes["troupe.member"], s.Attributes["troupe.step"] = e.Member, e.Step
			s.Attributes["troupe.depth"] = strconv.Itoa(e.Depth)
			s.Attributes["model"], s.Attributes["provider"] = e.Model, e.Provider
			t.runs[e.RunID] = len(t.spans)
			t.spans = append(t.spans, s)
			return
		}
		// A member run: under the delegation that started it, if any.
		parent := t.root.SpanID
		if e.Depth > 1 {
			parent = t.parentByDepth(e)
		}
		for id, i := range t.open {
			if t.memberOf[id] == e.Member && t.spans[i].End.IsZero() {
				parent = t.spans[i].SpanID
				break
			}
		}
		s := t.child(KindRun, "member.run "+e.Member, parent, e.CreatedAt)
		s.AgentID, s.TeamID = e.AgentID, e.TeamID
		s.Attributes["troupe.member"] = e.Member
		s.Attributes["troupe.depth"] = strconv.Itoa(e.Depth)
		s.Attributes["model"], s.Attributes["provider"] = e.Model, e.Provider
		t.runs[e.RunID] = len(t.spans)
		t.spans = append(t.spans, s)
	case event.ModelRequestCompleted:
		if e.Metrics == nil {
			return
		}
		name := "model.request " + e.Provider
		if e.Model != "" {
			name += "/" + e.Model
		}
		s := t.child(KindModel, name, t.parentOf(e), e.CreatedAt.Add(-e.Metrics.Duration))
		s.End = e.CreatedAt
		s.InputTokens, s.OutputTokens = e.Metrics.InputTokens, e.Metrics.OutputTokens
		s.Attributes["model"], s.Attributes["provider"] = e.Model, e.Provider
		setCost(s.Attributes, *e.Metrics)
		if e.Metrics.TimeToFirstToken > 0 {
			s.Attributes["time_to_first_token_ms"] = strconv.FormatFloat(float64(e.Metrics.TimeToFirstToken.Microseconds())/1000, 'f', 3, 64)
		}
		if t.content.Enabled && e.Exchange != nil {
			t.exchange(&s, e.Exchange)
		}
		t.spans = append(t.spans, s)
	case event.ToolCallStarted:
		if e.Tool == nil {
			return
		}
		kind, name := KindTool, "tool.call "+e.Tool.Name
		if e.Tool.Name == "knowledge_search" {
			kind, name = KindKnowledge, "knowledge.search"
		}
		s := t.child(kind, name, t.parentOf(e), e.Tool.StartedAt)
		s.Attributes["tool.name"], s.Attributes["tool.call_id"] = e.Tool.Name, e.Tool.ID
		if args, err := json.Marshal(e.Tool.Args); err == nil {
			s.Attributes["tool.arguments"] = t.clip(string(args))
		}
		if m, ok := e.Tool.Args["member"].(string); ok {
			t.memberOf[e.RunID+"/"+e.Tool.ID] = m
		}
		t.open[e.RunID+"/"+e.Tool.ID] = len(t.spans)
		t.spans = append(t.spans, s)
	case event.GuardrailChecked:
		g := e.Guardrail
		if g == nil {
			return
		}
		s := t.child(KindGuardrail, "guardrail."+g.Name, t.parentOf(e), g.StartedAt)
		s.End = g.StartedAt.Add(g.Duration)
		s.Attributes["guardrail.name"], s.Attributes["guardrail.kind"] = g.Name, g.Kind
		s.Attributes["guardrail.direction"], s.Attributes["guardrail.action"] = g.Direction, g.Action
		s.Attributes["guardrail.decision"] = g.Decision
		if len(g.Matched) > 0 {
			s.Attributes["guardrail.matched"] = strings.Join(g.Matched, ",")
		}
		if g.Kind == "injection" {
			s.Attributes["guardrail.score"] = strconv.FormatFloat(g.Score, 'f', 3, 64)
		}
		for kind, n := range g.Redactions {
			s.Attributes["guardrail.redactions."+kind] = strconv.Itoa(n)
		}
		if g.Reason != "" {
			s.Attributes["guardrail.reason"] = t.clip(g.Reason)
		}
		if g.Error != "" {
			s.Attributes["guardrail.error"] = t.clip(g.Error)
		}
		if g.Decision == "block" {
			s.Status, s.StatusMessage = StatusError, t.clip(g.Reason)
		}
		t.spans = append(t.spans, s)
	case event.ToolCallCompleted, event.ToolCallError:
		if e.Tool == nil {
			return
		}
		i, ok := t.open[e.RunID+"/"+e.Tool.ID]
		if !ok {
			return
		}
		delete(t.open, e.RunID+"/"+e.Tool.ID)
		s := &t.spans[i]
		s.End = e.Tool.StartedAt.Add(e.Tool.Duration)
		if e.Tool.Duration == 0 {
			s.End = e.CreatedAt
		}
		s.Attributes["tool.result"] = t.clip(e.Tool.Result)
		if e.Type == event.ToolCallError {
			s.Status, s.StatusMessage = StatusError, t.clip(e.Tool.Result)
		}
	case event.ReasoningStarted, event.ReasoningStep, event.ReasoningCompleted:
		t.reasoning(e)
	case event.RunPaused, event.RunContinued:
		t.approvals(e)
	case event.RunCompleted, event.RunError, event.RunCancelled:
		if e.Depth == 0 {
			return // the root ends in Finish
		}
		i, ok := t.runs[e.RunID]
		if !ok {
			return
		}
		s := &t.spans[i]
		s.End = e.CreatedAt
		if e.Metrics != nil {
			s.InputTokens, s.OutputTokens = e.Metrics.InputTokens, e.Metrics.OutputTokens
			setCost(s.Attributes, *e.Metrics)
		}
		if e.Type != event.RunCompleted {
			s.Status, s.StatusMessage = StatusError, t.clip(e.ErrorKind+": "+e.Content)
		}
	}
}

// Content configures what model-request spans record of the conversation.
type Content struct {
	// Enabled records, on each model request an agent or team lets trace
	// its content, the system instructions, the input messages and the
	// answer (tool calls included) as GenAI message JSON
	// (SystemInstructionsAttribute, InputMessagesAttribute,
	// OutputMessagesAttribute).
	Enabled bool
	// MaxPart bounds each text, tool argument and tool result in bytes
	// (default DefaultMaxContentPart); MaxMessages the input messages kept,
	// the newest (default DefaultMaxContentMessages).
	MaxPart, MaxMessages int
}

// Bounds of recorded conversations: a model span keeps at most about
// MaxMessages × MaxPart bytes of them.
const (
	DefaultMaxContentPart     = 2048
	DefaultMaxContentMessages = 32
)

// GenAI semantic-convention attributes of a model request's conversation.
const (
	SystemInstructionsAttribute = "gen_ai.system_instructions"
	InputMessagesAttribute      = "gen_ai.input.messages"
	OutputMessagesAttribute     = "gen_ai.output.messages"
)

// SetContent sets what model-request spans record of the conversation.
// Call it before the run's first event.
func (t *Trace) SetContent(c Content) {
	if c.MaxPart <= 0 {
		c.MaxPart = DefaultMaxContentPart
	}
	if c.MaxMessages <= 0 {
		c.MaxMessages = DefaultMaxContentMessages
	}
	t.mu.Lock()
	t.content = c
	t.mu.Unlock()
}

// exchange records a model request's conversation on its span. The agent
// or team rendering it has scrubbed it of the configured secrets (its
// tools' credentials, model API keys, values the specs take from the
// environment).
func (t *Trace) exchange(s *Span, x *event.Exchange) {
	sys, in, out := x.Render(t.content.MaxPart, t.content.MaxMessages)
	for k, v := range map[string]string{SystemInstructionsAttribute: sys, InputMessagesAttribute: in, OutputMessagesAttribute: out} {
		if v == "" {
			continue
		}
		s.Attributes[k] = v
	}
}

// reasoning records a run's reasoning as one span: opened at
// ReasoningStarted, a reasoning.step.N attribute per step (clipped), ended
// at ReasoningCompleted with the number of steps.
func (t *Trace) reasoning(e event.Event) {
	key := e.RunID + "/reasoning"
	i, ok := t.open[key]
	if !ok {
		if e.Type != event.ReasoningStarted {
			return
		}
		s := t.child(KindReasoning, "reasoning", t.parentOf(e), e.CreatedAt)
		s.Attributes["reasoning.steps"] = "0"
		t.open[key] = len(t.spans)
		t.spans = append(t.spans, s)
		return
	}
	s := &t.spans[i]
	switch e.Type {
	case event.ReasoningStep:
		n, _ := strconv.Atoi(s.Attributes["reasoning.steps"])
		n++
		s.Attributes["reasoning.steps"] = strconv.Itoa(n)
		if e.Reasoning != nil {
			s.Attributes["reasoning.step."+strconv.Itoa(n)] = t.clip(e.Reasoning.Text())
			if e.Reasoning.Source != "" {
				s.Attributes["reasoning.source"] = e.Reasoning.Source
			}
		}
	case event.ReasoningCompleted:
		s.End = e.CreatedAt
		delete(t.open, key)
	}
}

// approvals records the calls a run holds (RunPaused) and the decisions it
// continues with (RunContinued: who decided, when, what), one span each.
func (t *Trace) approvals(e event.Event) {
	for _, c := range e.Paused {
		name := "approval.wait " + c.ToolName
		at := e.CreatedAt
		if e.Type == event.RunContinued {
			name = "approval.decision " + c.ToolName
			if c.DecidedAt != nil && !c.DecidedAt.IsZero() {
				at = *c.DecidedAt
			}
		}
		s := t.child(KindApproval, name, t.parentOf(e), at)
		s.End = at
		s.Attributes["tool.name"], s.Attributes["tool.call_id"] = c.ToolName, c.ToolCallID
		if c.ApprovalID != "" {
			s.Attributes["approval.id"] = c.ApprovalID
		}
		if e.Type == event.RunContinued {
			s.Attributes["approval.decision"] = decision(c)
			if c.DecidedBy != "" {
				s.Attributes["approval.decided_by"] = c.DecidedBy
			}
			if c.DecidedAt != nil {
				s.Attributes["approval.decided_at"] = c.DecidedAt.UTC().Format(time.RFC3339Nano)
			}
			if c.ConfirmationNote != "" {
				s.Attributes["approval.comment"] = t.clip(c.ConfirmationNote)
			}
		} else if c.Reason != "" {
			s.Attributes["approval.reason"] = t.clip(c.Reason)
		}
		t.spans = append(t.spans, s)
	}
}

// decision names what a held call got.
func decision(c event.ToolExecution) string {
	switch {
	case c.Confirmed != nil && *c.Confirmed:
		return "approved"
	case c.Confirmed != nil:
		return "rejected"
	case c.Result != nil:
		return "external_result"
	case c.RequiresUserInput:
		return "user_input"
	}
	return "none"
}

// stepKey identifies a workflow step execution among a trace's spans.
func stepKey(e event.Event) string { return e.Step + "#" + strconv.Itoa(e.Iteration) }

// openContainer returns the span a workflow step starts under: the latest
// step still open that contains others (parallel, condition, loop, router,
// nested workflow), else the run's root.
func (t *Trace) openContainer() string {
	for i := len(t.spans) - 1; i >= 0; i-- {
		s := t.spans[i]
		if s.Kind != KindStep || !s.End.IsZero() {
			continue
		}
		switch s.Attributes["troupe.step_type"] {
		case "parallel", "condition", "loop", "router", "workflow":
			return s.SpanID
		}
	}
	return t.root.SpanID
}

// parentByDepth finds the run span one level up for a nested member: the most
// recent open member run at depth-1.
func (t *Trace) parentByDepth(e event.Event) string {
	want := strconv.Itoa(e.Depth - 1)
	for i := len(t.spans) - 1; i >= 0; i-- {
		s := t.spans[i]
		if s.Kind == KindRun && s.Attributes["troupe.depth"] == want && s.End.IsZero() {
			return s.SpanID
		}
	}
	return t.root.SpanID
}

// StoreSpan records a store write of the run (persisting its result).
func (t *Trace) StoreSpan(name string, start, end time.Time, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.child(KindStore, name, t.root.SpanID, start)
	s.End = end
	if err != nil {
		s.Status, s.StatusMessage = StatusError, t.clip(err.Error())
	}
	t.spans = append(t.spans, s)
}

// CostAttribute is the span attribute of a model request's or a run's cost
// in USD; CostUnknownAttribute is "true" when a model's price is unknown.
const (
	CostAttribute        = "cost_usd"
	CostUnknownAttribute = "cost_unknown"
)

// setCost records m's cost on a span, when there is one to record: spans
// of runs that made no priced call keep their attributes as they were.
func setCost(attrs map[string]string, m event.Metrics) {
	if m.Cost != 0 {
		attrs[CostAttribute] = strconv.FormatFloat(m.Cost.Dollars(), 'f', -1, 64)
	}
	if m.CostUnknown {
		attrs[CostUnknownAttribute] = "true"
	}
}

// Finish ends the run at end with its outcome and returns every span, root
// first. Spans left open (a cancelled tool call) end with the run.
func (t *Trace) Finish(end time.Time, status, errorKind, message string, m event.Metrics) []Span {
	return t.finish(end, status, errorKind, message, m, false)
}

// PausedAttribute marks the spans of a workflow run that paused at an
// approval step: the root span and the steps still open (the approval step
// and the containers around it), with the value "true". Their status stays
// OK (pausing is no failure); the run's continuation is another execution,
// whose root span is a child of this root in the same trace.
const PausedAttribute = "troupe.paused"

// Paused ends the trace of a workflow run that paused at an approval step
// and returns its spans: like Finish with StatusOK, but the root span and
// the steps still open are marked PausedAttribute instead of failed.
func (t *Trace) Paused(end time.Time, m event.Metrics) []Span {
	return t.finish(end, StatusOK, "", "", m, true)
}

func (t *Trace) finish(end time.Time, status, errorKind, message string, m event.Metrics, paused bool) []Span {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.root.End = end
	t.root.InputTokens, t.root.OutputTokens = m.InputTokens, m.OutputTokens
	setCost(t.root.Attributes, m)
	if status != StatusOK {
		t.root.Status = StatusError
		t.root.StatusMessage = t.clip(message)
		t.root.Attributes["error.class"] = errorKind
	}
	if paused {
		t.root.Attributes[PausedAttribute] = "true"
	}
	out := make([]Span, 0, len(t.spans)+1)
	out = append(out, t.root)
	for _, s := range t.spans {
		if s.End.IsZero() {
			s.End = end
			switch {
			case paused && s.Kind == KindStep:
				s.Attributes[PausedAttribute] = "true"
			case s.Status == StatusOK:
				s.Status, s.StatusMessage = StatusError, "did not finish before the run ended"
			}
		}
		out = append(out, s)
	}
	return out
}
