package spec

import (
	"slices"
	"time"
)

// SearchesKnowledge says whether the agent gets the knowledge_search tool:
// when it lists it, or lists knowledge and does not opt out (as Agno gives an
// agent with knowledge its search by default).
func (a *Agent) SearchesKnowledge() bool {
	if slices.Contains(a.Tools, "knowledge_search") {
		return true
	}
	return len(a.Knowledge) > 0 && (a.KnowledgeSearch == nil || *a.KnowledgeSearch)
}

// Agent is a model with instructions, tools and knowledge that answers one message
// at a time, optionally within a session.
type Agent struct {
	Meta `yaml:",inline"`

	Model           string     `yaml:"model" spec:"required" doc:"A provider/model string (openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, ollama/llama3.2), the offline demo model echo, or the name of a Model document."`
	Instructions    string     `yaml:"instructions" doc:"System instructions given to the model on every run."`
	Tools           []string   `yaml:"tools" doc:"Names of builtin tools (current_time, calculator, http_fetch, knowledge_search) or Tool documents."`
	Knowledge       []string   `yaml:"knowledge" doc:"Names of Knowledge documents the agent can search: listing knowledge gives the agent the knowledge_search tool over them (it need not be in tools) unless knowledge_search is false."`
	KnowledgeSearch *bool      `yaml:"knowledge_search" doc:"Give the agent the knowledge_search tool over its knowledge (default true when knowledge is listed); false keeps its knowledge out of its runs (for instance a base it only writes to with learning)."`
	History         *int       `yaml:"history" doc:"How many earlier completed runs of the session go into the context (default 10; 0 = none)."`
	HistoryTokens   int        `yaml:"history_tokens" doc:"Estimated tokens (about 4 bytes each) the history may take; the oldest whole runs are dropped first (default 8000)."`
	Summary         *Summary   `yaml:"summary" doc:"Fold the session's older turns into a running summary (summary: true, or {model, threshold_tokens, keep_runs, prompt}): once the runs not yet folded exceed threshold_tokens, a background job after the run asks the model to fold all but the keep_runs newest into the summary, which then goes into the instructions in place of those runs."`
	SessionState    bool       `yaml:"session_state" doc:"Give the model the session's key-value state (JSON, at most 100 keys and 64 KiB) in its instructions, and the get_state and set_state tools to read and change it; the state is kept with the session across turns."`
	AddDate         bool       `yaml:"add_date" doc:"Tell the model today's date and time."`
	OutputSchema    JSONSchema `yaml:"output_schema" doc:"JSON Schema (type object) the answer must satisfy; the answer is requested and validated as JSON."`
	Temperature     *float64   `yaml:"temperature" doc:"Sampling temperature, 0 to 2; overrides the model's."`
	MaxTokens       int        `yaml:"max_tokens" doc:"Upper bound on tokens generated per model request; overrides the model's."`
	Limits          Limits     `yaml:"limits" doc:"Bounds on one run."`
	Guardrails      Guardrails `yaml:"guardrails" doc:"Checks on the user message (input) and the final answer (output): pii, injection, size, model, http."`
	Budgets         []string   `yaml:"budgets" doc:"Names of Budget documents capping this agent's cost, tokens, tool calls and wall time."`
	Reasoning       *Reasoning `yaml:"reasoning" doc:"Reason before answering: a planning pass ({model, max_steps}), a think tool ({tool: think}) or the provider's native reasoning ({native: true, budget_tokens})."`
	Learning        *Learning  `yaml:"learning" doc:"Learn from runs: reusable insights are saved into a knowledge base ({knowledge, mode: always | agentic | propose, model, prompt, approvers})."`
	Memory          *Memory    `yaml:"memory" doc:"Remember facts about the user across sessions (memory: agentic | automatic | both, or {mode, scope: user | agent, recall, model, prompt}): runs with a user id get the user's most relevant memories in their instructions; agentic gives the model remember, forget and recall tools, automatic extracts memories in a background job after each run."`
	Trace           *Trace     `yaml:"trace" doc:"What traces record: {content: false} keeps the messages sent to the model and its answers off spans."`
}

// Limits bound the work one run may do.
type Limits struct {
	MaxToolCalls  int      `yaml:"max_tool_calls" doc:"Tool calls allowed per run before it stops (default 20)."`
	Timeout       Duration `yaml:"timeout" doc:"Wall-clock limit for a whole run (default 5m)."`
	ToolTimeout   Duration `yaml:"tool_timeout" doc:"Limit for a single tool call (default 30s)."`
	MaxToolResult int      `yaml:"max_tool_result" doc:"Bytes of a tool result passed to the model; longer results are truncated (default 16384)."`
	MaxModelTurns int      `yaml:"max_model_turns" doc:"Model requests allowed per run (default 25)."`
}

// Defaults for Limits, applied in code so they are documented in one place.
const (
	DefaultMaxToolCalls  = 20
	DefaultRunTimeout    = 5 * time.Minute
	DefaultToolTimeout   = 30 * time.Second
	DefaultMaxToolResult = 16 << 10
	DefaultMaxModelTurns = 25

	// A session remembers its recent turns unless told otherwise; the token
	// bound keeps a chatty session from filling a small model's window.
	DefaultHistoryRuns   = 10
	DefaultHistoryTokens = 8000
)

// applyHistoryDefaults fills an unset history (nil, not 0: 0 turns it off)
// and token budget.
func applyHistoryDefaults(runs **int, tokens *int) {
	if *runs == nil {
		n := DefaultHistoryRuns
		*runs = &n
	}
	if *tokens == 0 {
		*tokens = DefaultHistoryTokens
	}
}

// historyRuns is the number of runs a history field asks for. Decoding
// applies the default, so nil is only seen on a spec built in Go, which
// gets no history, as before defaults existed.
func historyRuns(runs *int) int {
	if runs == nil {
		return 0
	}
	return *runs
}

func validateHistory(v *validator, p string, runs *int, tokens int) {
	if runs != nil {
		v.nonNegative(p+".history", *runs)
	}
	v.nonNegative(p+".history_tokens", tokens)
}

func (l *Limits) applyDefaults() {
	if l.MaxToolCalls == 0 {
		l.MaxToolCalls = DefaultMaxToolCalls
	}
	if l.Timeout == 0 {
		l.Timeout = Duration(DefaultRunTimeout)
	}
	if l.ToolTimeout == 0 {
		l.ToolTimeout = Duration(DefaultToolTimeout)
	}
	if l.MaxToolResult == 0 {
		l.MaxToolResult = DefaultMaxToolResult
	}
	if l.MaxModelTurns == 0 {
		l.MaxModelTurns = DefaultMaxModelTurns
	}
}

func (a *Agent) applyDefaults() {
	a.Limits.applyDefaults()
	a.Guardrails.applyDefaults()
	applyHistoryDefaults(&a.History, &a.HistoryTokens)
	if a.Learning != nil {
		a.Learning.applyDefaults()
	}
	if a.Memory != nil {
		a.Memory.applyDefaults()
	}
}

// HistoryRuns is how many earlier runs of the session the agent sees.
func (a *Agent) HistoryRuns() int { return historyRuns(a.History) }

func (a *Agent) validate(v *validator) {
	p := a.Path()
	v.modelRef(p+".model", a.Model)
	for i, t := range a.Tools {
		v.ref(indexPath(p+".tools", i), KindTool, t)
	}
	for i, k := range a.Knowledge {
		v.ref(indexPath(p+".knowledge", i), KindKnowledge, k)
	}
	v.unique(p+".tools", a.Tools)
	v.unique(p+".knowledge", a.Knowledge)
	if a.KnowledgeSearch != nil && !*a.KnowledgeSearch && slices.Contains(a.Tools, "knowledge_search") {
		v.errorf(p+".knowledge_search", "knowledge_search: false contradicts tools listing knowledge_search: remove one of them")
	}
	validateHistory(v, p, a.History, a.HistoryTokens)
	if a.Summary != nil {
		a.Summary.validate(v, p+".summary", historyRuns(a.History))
	}
	v.nonNegative(p+".max_tokens", a.MaxTokens)
	v.temperature(p+".temperature", a.Temperature)
	v.schema(p+".output_schema", a.OutputSchema, true)
	a.Limits.validate(v, p+".limits")
	a.Guardrails.validate(v, p+".guardrails")
	v.budgetRefs(p+".budgets", a.Budgets)
	if a.Reasoning != nil {
		a.Reasoning.validate(v, p+".reasoning", a.Model)
	}
	if a.Learning != nil {
		a.Learning.validate(v, p+".learning")
	}
	if a.Memory != nil {
		a.Memory.validate(v, p+".memory")
	}
}

func (l *Limits) validate(v *validator, p string) {
	v.nonNegative(p+".max_tool_calls", l.MaxToolCalls)
	v.nonNegative(p+".max_tool_result", l.MaxToolResult)
	v.nonNegative(p+".max_model_turns", l.MaxModelTurns)
	v.duration(p+".timeout", l.Timeout)
	v.duration(p+".tool_timeout", l.ToolTimeout)
}
