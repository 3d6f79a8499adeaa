package spec

// Team modes.
const (
	ModeRoute      = "route"
	ModeCoordinate = "coordinate"
	ModeBroadcast  = "broadcast"
)

// Team runs several agents (or teams) under a leader model.
type Team struct {
	Meta `yaml:",inline"`

	Mode                    string     `yaml:"mode" spec:"required" enum:"route,coordinate,broadcast" doc:"route: the leader picks one member and returns its answer; coordinate: the leader delegates tasks to members and writes the answer; broadcast: every member answers in parallel and the leader synthesizes."`
	Members                 []string   `yaml:"members" spec:"required" doc:"Names of the agents or teams in this team."`
	Model                   string     `yaml:"model" spec:"required" doc:"The leader's model: provider/model, echo, or a Model document name."`
	Instructions            string     `yaml:"instructions" doc:"The leader's instructions."`
	ShareMemberInteractions bool       `yaml:"share_member_interactions" doc:"Show members what earlier members said in the same run."`
	History                 *int       `yaml:"history" doc:"How many earlier completed team turns of the session (user message and team answer) go into the context (default 10; 0 = none). The leader sees them in every mode; the chosen member in route mode and every member in broadcast mode see them too; coordinate members get only their task."`
	HistoryTokens           int        `yaml:"history_tokens" doc:"Estimated tokens (about 4 bytes each) the history may take; the oldest whole turns are dropped first (default 8000)."`
	Summary                 *Summary   `yaml:"summary" doc:"Fold the team session's older turns into a running summary given to the leader, as an agent's summary does (model defaults to the leader's)."`
	Limits                  Limits     `yaml:"limits" doc:"Bounds on one team run (tool calls are delegations)."`
	Guardrails              Guardrails `yaml:"guardrails" doc:"Checks on the user message (input) and the final answer (output): pii, injection, size, model, http."`
	Budgets                 []string   `yaml:"budgets" doc:"Names of Budget documents capping this team's runs, members included."`
	Reasoning               *Reasoning `yaml:"reasoning" doc:"The leader reasons before answering, as an agent's reasoning does (coordinate and broadcast modes)."`
	Trace                   *Trace     `yaml:"trace" doc:"What traces record: {content: false} keeps the messages sent to the model and its answers off spans."`
	SessionState            bool       `yaml:"session_state" doc:"Give the leader (coordinate and broadcast modes) the session's key-value state in its instructions and the get_state and set_state tools; members that set session_state themselves share the same state during the run."`
	Learning                *Learning  `yaml:"learning" doc:"Learn from the team's runs: after each completed run a background job saves reusable insights into a knowledge base (mode always), or proposes them in the approvals inbox (mode propose); agentic is for agents."`
	Memory                  *Memory    `yaml:"memory" doc:"Remember facts about the user across sessions, as an agent's memory does: the leader gets the user's most relevant memories in its instructions (members get their task, or the conversation, but not the memories); agentic gives the leader remember, forget and recall tools (coordinate and broadcast modes); automatic extracts memories from each team run."`
}

func (t *Team) applyDefaults() {
	t.Limits.applyDefaults()
	t.Guardrails.applyDefaults()
	applyHistoryDefaults(&t.History, &t.HistoryTokens)
	if t.Learning != nil {
		t.Learning.applyDefaults()
	}
	if t.Memory != nil {
		t.Memory.applyDefaults()
	}
}

// HistoryRuns is how many earlier team turns of the session the team sees.
func (t *Team) HistoryRuns() int { return historyRuns(t.History) }

func (t *Team) validate(v *validator) {
	p := t.Path()
	v.modelRef(p+".model", t.Model)
	for i, m := range t.Members {
		v.member(indexPath(p+".members", i), t.Name, m)
	}
	v.unique(p+".members", t.Members)
	validateHistory(v, p, t.History, t.HistoryTokens)
	if t.Summary != nil {
		t.Summary.validate(v, p+".summary", historyRuns(t.History))
	}
	if t.Reasoning != nil {
		if t.Mode == ModeRoute {
			v.errorf(p+".reasoning", "a route leader only picks a member and does not reason: use mode coordinate or broadcast, or remove reasoning")
		}
		t.Reasoning.validate(v, p+".reasoning", t.Model)
	}
	if t.SessionState && t.Mode == ModeRoute {
		v.errorf(p+".session_state", "a route leader only picks a member and never reads the state: give session_state to the members, or use mode coordinate or broadcast")
	}
	t.Limits.validate(v, p+".limits")
	t.Guardrails.validate(v, p+".guardrails")
	v.budgetRefs(p+".budgets", t.Budgets)
	if t.Learning != nil {
		if t.Learning.Mode == LearnAgentic {
			v.errorf(p+".learning.mode", "a team's leader has no save_learning tool: use mode always or propose (or give a member agent learning: {mode: agentic})")
		}
		t.Learning.validate(v, p+".learning")
	}
	if t.Memory != nil {
		if t.Memory.Tools() && t.Mode == ModeRoute {
			v.errorf(p+".memory.mode", "a route leader only picks a member and has no memory tools: use mode automatic, or mode coordinate or broadcast, or give a member agent memory: agentic")
		}
		t.Memory.validate(v, p+".memory")
	}
}
