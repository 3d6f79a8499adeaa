package spec

import "strings"

// Reasoning modes and bounds.
const (
	// ThinkTool is the only reasoning tool: the model writes a step down.
	ThinkTool = "think"
	// DefaultReasoningSteps bounds a planning pass when max_steps is unset;
	// MaxReasoningSteps is the largest max_steps accepted.
	DefaultReasoningSteps = 5
	MaxReasoningSteps     = 20
	// DefaultThinkingBudget is the budget_tokens of native reasoning when
	// unset; MinThinkingBudget is the smallest Anthropic accepts.
	DefaultThinkingBudget = 2048
	MinThinkingBudget     = 1024
)

// Reasoning makes an agent reason before it answers, in one of three ways
// (exactly one is set): a planning pass by a reasoning model, a think tool
// the agent's model may call, or the provider's native reasoning.
type Reasoning struct {
	Model        string `yaml:"model" doc:"A reasoning model (provider/model or a Model name) that writes numbered steps before the agent answers; the steps are given to the agent's model as context."`
	MaxSteps     int    `yaml:"max_steps" doc:"Steps a planning pass keeps, 1 to 20 (default 5); only with model."`
	Tool         string `yaml:"tool" enum:"think" doc:"think: offer the agent's model a think tool to write a reasoning step down (no side effects)."`
	Native       bool   `yaml:"native" doc:"Ask the provider to reason natively (Anthropic extended thinking). Reasoning a server reports on its own (reasoning_content from DeepSeek, vLLM) is captured without it."`
	BudgetTokens int    `yaml:"budget_tokens" doc:"Tokens the provider may think with, at least 1024 (default 2048); only with native."`
}

// Steps returns the planning pass's bound.
func (r *Reasoning) Steps() int {
	if r.MaxSteps > 0 {
		return r.MaxSteps
	}
	return DefaultReasoningSteps
}

// Budget returns the native reasoning budget, in tokens.
func (r *Reasoning) Budget() int {
	if r.BudgetTokens > 0 {
		return r.BudgetTokens
	}
	return DefaultThinkingBudget
}

// validate checks the reasoning of an agent whose model is agentModel.
func (r *Reasoning) validate(v *validator, p, agentModel string) {
	modes := 0
	for _, on := range []bool{r.Model != "", r.Tool != "", r.Native} {
		if on {
			modes++
		}
	}
	_, toolWritten := v.meta.positions[p+".tool"] // an invalid tool is reported as such
	if modes > 1 || (modes == 0 && !toolWritten) {
		v.errorf(p, "reasoning needs exactly one of model (a planning pass), tool: think, or native: true")
	}
	if r.Model != "" {
		v.modelRef(p+".model", r.Model)
	}
	if r.MaxSteps != 0 {
		switch {
		case r.Model == "":
			v.errorf(p+".max_steps", "max_steps bounds a planning pass: set reasoning.model too, or remove max_steps")
		case r.MaxSteps < 1 || r.MaxSteps > MaxReasoningSteps:
			v.errorf(p+".max_steps", "max_steps must be between 1 and %d", MaxReasoningSteps)
		}
	}
	if r.BudgetTokens != 0 {
		switch {
		case !r.Native:
			v.errorf(p+".budget_tokens", "budget_tokens is the native thinking budget: set native: true too, or remove budget_tokens")
		case r.BudgetTokens < MinThinkingBudget:
			v.errorf(p+".budget_tokens", "budget_tokens must be at least %d (Anthropic's minimum)", MinThinkingBudget)
		}
	}
	if r.Native {
		if provider := v.providerOf(agentModel); provider != "" && provider != "anthropic" {
			// Not an error: OpenAI-wire reasoning servers report
			// reasoning_content without being asked, and it is captured.
			v.add(Warning, p+".native", "provider %s has no switch for native reasoning: only anthropic is asked to think; reasoning_content that an OpenAI-wire server sends on its own is captured either way", provider)
		}
	}
}

// providerOf returns the provider of a model reference (provider/model, echo,
// or a Model document), or "" when it cannot be resolved (reported
// elsewhere).
func (v *validator) providerOf(ref string) string {
	if provider, _, ok := SplitModelRef(ref); ok {
		return provider
	}
	if m, ok := v.set.lookup(KindModel, ref).(*Model); ok {
		return strings.ToLower(m.Provider)
	}
	return ""
}
