package view

import (
	"github.com/troupehq/troupe/engine/event"
)

// stepBody is what a reasoning step says: a planned action, or a thought.
func stepBody(st event.Thought) string {
	if st.Action != "" {
		return st.Action
	}
	return st.Reasoning
}

func stepCount(n int) string { return plural(n, "step", "steps") }
