package spec

// Learning modes.
const (
	// LearnAlways distils insights from every completed run, in a
	// background job, and saves them.
	LearnAlways = "always"
	// LearnAgentic gives the agent's model a save_learning tool.
	LearnAgentic = "agentic"
	// LearnPropose distils as always does (and offers save_learning), but
	// each insight waits in the approvals inbox until a person decides.
	LearnPropose = "propose"
)

// LearningModes lists the learning modes.
var LearningModes = []string{LearnAlways, LearnAgentic, LearnPropose}

// Learning makes an agent learn: reusable insights from its runs are saved
// into a knowledge base that later runs (of any agent listing that base)
// search.
type Learning struct {
	Knowledge string    `yaml:"knowledge" spec:"required" doc:"Name of the Knowledge document the insights are saved into."`
	Mode      string    `yaml:"mode" enum:"always,agentic,propose" doc:"always: after each completed run a background job asks a model for reusable insights and saves them; agentic: the model gets a save_learning tool; propose: insights (from the job and the tool) wait in the approvals inbox until a person approves them (default always)."`
	Model     string    `yaml:"model" doc:"Model that distils insights after a run (provider/model or a Model name; default the agent's)."`
	Prompt    string    `yaml:"prompt" doc:"Instructions for distilling insights, replacing the default prompt; the answer must still be a JSON list of {\"text\", \"topic\"} objects."`
	Approvers Approvers `yaml:"approvers" doc:"Who may approve proposed insights (mode propose; default: any key with scope approvals:write)."`
}

// Distils reports whether runs are distilled by the background job.
func (l *Learning) Distils() bool { return l.Mode == LearnAlways || l.Mode == LearnPropose }

// Tool reports whether the model gets the save_learning tool.
func (l *Learning) Tool() bool { return l.Mode == LearnAgentic || l.Mode == LearnPropose }

func (l *Learning) applyDefaults() {
	if l.Mode == "" {
		l.Mode = LearnAlways
	}
	if l.Mode == LearnPropose && len(l.Approvers.Scopes) == 0 && len(l.Approvers.Users) == 0 {
		l.Approvers.Scopes = []string{DefaultApproverScope}
	}
}

func (l *Learning) validate(v *validator, p string) {
	if l.Knowledge != "" {
		v.ref(p+".knowledge", KindKnowledge, l.Knowledge)
	}
	if l.Model != "" {
		v.modelRef(p+".model", l.Model)
	}
	v.approvers(p+".approvers", l.Approvers)
}
