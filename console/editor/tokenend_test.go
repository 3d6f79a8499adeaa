package editor

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTokenEnd: the end of what the editor underlines, for each kind of
// token a diagnostic can point at (columns 1-based, the end exclusive).
func TestTokenEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line string
		col, end   int
	}{
		{"plain scalar", "model: gpt-4o  ", 8, 14},
		{"plain scalar before a comment", "model: gpt-4o # fast", 8, 14},
		{"key to its colon", "modle: echo", 1, 6},
		{"double-quoted", `model: "a b" # c`, 8, 13},
		{"escaped quote", `model: "a\"b" # c`, 8, 14},
		{"escaped backslash", `model: "a\\" # c`, 8, 13},
		{"single-quoted with a doubled quote", `model: 'it''s' # c`, 8, 15},
		{"unclosed quote", `model: "abc`, 8, 12},
		{"flow item", "tools: [calculater, current_time]", 9, 19},
		{"last flow item", "tools: [a, bad]", 12, 15},
		{"list item", "  - calculater", 3, 15},
		{"past the text", "model:", 8, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, end := tokenEnd(strings.Split(tt.line, "\n"), 1, tt.col)
			require.Equal(t, 1, line)
			rs := []rune(tt.line)
			from := min(tt.col-1, len(rs))
			require.Equal(t, tt.end, end, "underlined: %q", string(rs[from:max(from, min(end-1, len(rs)))]))
		})
	}
}
