package tool

import "context"

// Run names the run a tool call serves, for tools whose effects are kept
// with their origin (save_learning links each learning to its run).
type Run struct {
	RunID     string
	SessionID string
	UserID    string
	// Agent is the name of the agent whose model called the tool.
	Agent string
}

type runKey struct{}

// WithRun returns a context whose tool calls serve run r.
func WithRun(ctx context.Context, r Run) context.Context {
	return context.WithValue(ctx, runKey{}, r)
}

// RunOf returns the run ctx's tool call serves, and false outside a run.
func RunOf(ctx context.Context) (Run, bool) {
	r, ok := ctx.Value(runKey{}).(Run)
	return r, ok
}
