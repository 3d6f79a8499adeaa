package summary

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/session"
)

// TestParse: the model is asked for JSON, in a code fence or not, and plain
// text is accepted as the summary.
func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content string
		want          session.Summary
	}{
		{"json", `{"summary": "Alice likes tea.", "topics": ["tea"]}`, session.Summary{Summary: "Alice likes tea.", Topics: []string{"tea"}}},
		{"fenced json", "```json\n{\"summary\": \" Bob \", \"topics\": []}\n```", session.Summary{Summary: "Bob", Topics: []string{}}},
		{"plain text", "  Alice likes tea.\n", session.Summary{Summary: "Alice likes tea."}},
		{"json without a summary is text", `{"topics": ["x"]}`, session.Summary{Summary: `{"topics": ["x"]}`}},
		{"empty", "", session.Summary{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, parse(tt.content))
		})
	}
}
