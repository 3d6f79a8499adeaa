package view

import (
	"strconv"

	"github.com/troupehq/troupe/engine/event"
)

// stepBody is what a reasoning step says: a planned action, or a thought.
func stepBody(st event.Thought) string {
	if st.Action != "" {
		return st.Action
	}
	return st.Reasoning
}

func stepCount(n int) string {
	if n == 1 {
		return "1 step"
	}
	return strconv.Itoa(n) + " steps"
}
