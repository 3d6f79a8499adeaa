package spec

// Trace configures what an agent's or team's traces record.
type Trace struct {
	Content *bool `yaml:"content" doc:"Record what the model was sent and answered (messages, tool calls, results) on model-request spans, scrubbed of configured secrets and truncated (default true); false keeps conversations out of traces."`
}

// TraceContent reports whether traces may record the conversation of the
// runner configured with t (nil: the default, yes).
func (t *Trace) TraceContent() bool { return t == nil || t.Content == nil || *t.Content }
