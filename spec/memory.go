package spec

// Memory modes and scopes.
const (
	// MemoryAgentic gives the model the remember, forget and recall tools.
	MemoryAgentic = "agentic"
	// MemoryAutomatic extracts memories after each completed run with a
	// user, in a background job.
	MemoryAutomatic = "automatic"
	// MemoryBoth does both.
	MemoryBoth = "both"
	// MemoryScopeUser shares a user's memories across every agent;
	// MemoryScopeAgent keys the memories an agent writes by its name too,
	// and it recalls only those and the user's unscoped ones.
	MemoryScopeUser  = "user"
	MemoryScopeAgent = "agent"
	// DefaultMemoryRecall is how many memories go into the context when
	// recall is unset; MaxMemoryRecall bounds it.
	DefaultMemoryRecall = 5
	MaxMemoryRecall     = 50
	// MaxMemoryPrompt bounds an extraction prompt override, in bytes.
	MaxMemoryPrompt = 16 << 10
)

// Memory makes an agent (or a team's leader) remember facts about its user
// across sessions: the user's most relevant memories go into the
// instructions of every run that has a user id, and new ones are written by
// the model through tools (agentic), by a background job after each run
// (automatic), or both.
type Memory struct {
	Mode   string `yaml:"mode" spec:"short" enum:"agentic,automatic,both" doc:"agentic: the model gets remember, forget and recall tools; automatic: after each completed run with a user, a background job asks a model to add, update and delete the user's memories; both (memory: automatic is short for {mode: automatic}; default automatic)."`
	Scope  string `yaml:"scope" enum:"user,agent" doc:"user: the user's memories are shared by every agent; agent: memories this agent writes are keyed by its name too, and it recalls only those and the user's memories of no agent (default user)."`
	Recall *int   `yaml:"recall" doc:"How many of the user's memories, the most relevant to the message (and, among equals, the freshest), go into the instructions, 0 to 50 (default 5; 0 = none)."`
	Model  string `yaml:"model" doc:"The model that extracts memories after a run (mode automatic or both): provider/model, echo, or a Model name (default: the agent's model, or the team leader's)."`
	Prompt string `yaml:"prompt" doc:"Instructions for the extracting model, replacing the built-in ones; it is still asked for a JSON list of operations [{\"op\": \"add\" | \"update\" | \"delete\", \"id\", \"memory\", \"topics\"}]."`
}

// Tools reports whether the model gets the memory tools.
func (m *Memory) Tools() bool { return m.Mode == MemoryAgentic || m.Mode == MemoryBoth }

// Extracts reports whether a job extracts memories after runs.
func (m *Memory) Extracts() bool { return m.Mode == MemoryAutomatic || m.Mode == MemoryBoth }

// RecallK returns how many memories go into the context.
func (m *Memory) RecallK() int {
	if m.Recall != nil {
		return *m.Recall
	}
	return DefaultMemoryRecall
}

// AgentScoped reports whether memories are keyed by the agent's name too.
func (m *Memory) AgentScoped() bool { return m.Scope == MemoryScopeAgent }

func (m *Memory) applyDefaults() {
	if m.Mode == "" {
		m.Mode = MemoryAutomatic
	}
	if m.Scope == "" {
		m.Scope = MemoryScopeUser
	}
}

func (m *Memory) validate(v *validator, p string) {
	if m.Recall != nil && (*m.Recall < 0 || *m.Recall > MaxMemoryRecall) {
		v.errorf(p+".recall", "recall must be between 0 and %d", MaxMemoryRecall)
	}
	if m.Model != "" {
		v.modelRef(p+".model", m.Model)
		if !m.Extracts() {
			v.errorf(p+".model", "model extracts memories after runs, which mode %s does not do: use mode automatic or both, or remove model", m.Mode)
		}
	}
	if m.Prompt != "" && !m.Extracts() {
		v.errorf(p+".prompt", "prompt instructs the extraction after runs, which mode %s does not do: use mode automatic or both, or remove prompt", m.Mode)
	}
	if len(m.Prompt) > MaxMemoryPrompt {
		v.errorf(p+".prompt", "prompt is %d bytes; keep it under %d", len(m.Prompt), MaxMemoryPrompt)
	}
}
