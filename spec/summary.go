package spec

// Session summary defaults and bounds.
const (
	// DefaultSummaryKeepRuns is how many of the newest runs stay verbatim
	// when older ones are folded into the summary.
	DefaultSummaryKeepRuns = 3
	// MaxSummaryKeepRuns bounds keep_runs: the runs kept verbatim are read
	// on every turn.
	MaxSummaryKeepRuns = 100
	// MaxSummaryPrompt bounds a summary prompt override, in bytes.
	MaxSummaryPrompt = 16 << 10
)

// Summary folds a session's older turns into a running summary written by a
// model in a background job after the run, so a long session's context
// stays bounded: the summary plus the runs after it.
type Summary struct {
	Enabled         *bool  `yaml:"enabled" spec:"short" doc:"Summarize the session (summary: true is short for this; default true when summary is a mapping)."`
	Model           string `yaml:"model" doc:"The model that writes the summary: provider/model, echo, or a Model name (default: the agent's model, or the team leader's)."`
	ThresholdTokens int    `yaml:"threshold_tokens" doc:"Estimated tokens (about 4 bytes each) the session's runs not yet folded into the summary may take before older ones are folded (default: history_tokens)."`
	KeepRuns        *int   `yaml:"keep_runs" doc:"How many of the newest runs stay verbatim when the older ones are folded, 0 to 100 (default 3)."`
	Prompt          string `yaml:"prompt" doc:"Instructions for the summarizing model, replacing the built-in ones; it is still asked for JSON {\"summary\", \"topics\"} and plain text is accepted."`
}

// On reports whether summaries are on: summary: true, or a mapping without
// enabled: false.
func (s *Summary) On() bool { return s != nil && (s.Enabled == nil || *s.Enabled) }

// Keep returns how many of the newest runs stay verbatim.
func (s *Summary) Keep() int {
	if s.KeepRuns != nil {
		return *s.KeepRuns
	}
	return DefaultSummaryKeepRuns
}

// Threshold returns the token threshold, defaulting to historyTokens.
func (s *Summary) Threshold(historyTokens int) int {
	if s.ThresholdTokens > 0 {
		return s.ThresholdTokens
	}
	if historyTokens > 0 {
		return historyTokens
	}
	return DefaultHistoryTokens
}

// validate checks the summary of an agent or team whose history is
// historyRuns runs.
func (s *Summary) validate(v *validator, p string, historyRuns int) {
	if !s.On() {
		return
	}
	if s.Model != "" {
		v.modelRef(p+".model", s.Model)
	}
	v.nonNegative(p+".threshold_tokens", s.ThresholdTokens)
	if s.KeepRuns != nil && (*s.KeepRuns < 0 || *s.KeepRuns > MaxSummaryKeepRuns) {
		v.errorf(p+".keep_runs", "keep_runs must be between 0 and %d", MaxSummaryKeepRuns)
	}
	if len(s.Prompt) > MaxSummaryPrompt {
		v.errorf(p+".prompt", "prompt is %d bytes; keep it under %d", len(s.Prompt), MaxSummaryPrompt)
	}
	if historyRuns == 0 {
		v.errorf(p, "a summary stands in for older history, but history is 0: set history above 0, or remove summary")
	}
}
