package tool_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/tool"
)

func TestRedactor(t *testing.T) {
	t.Parallel()
	r := tool.NewRedactor("Bearer sk-0123456789", "sk-0123456789-long", "abc", "")
	tests := []struct{ in, want string }{
		{"auth: Bearer sk-0123456789!", "auth: [redacted]!"},
		{"key sk-0123456789 alone", "key [redacted] alone"},
		{"longer sk-0123456789-long whole", "longer [redacted] whole"},
		{"abc is too short to be a secret", "abc is too short to be a secret"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, r.Redact(tt.in))
	}
	base := errors.New("upstream said sk-0123456789")
	err := r.Error(base)
	require.EqualError(t, err, "upstream said [redacted]")
	require.ErrorIs(t, err, base)
	require.Nil(t, r.Error(nil))
	var none *tool.Redactor
	require.Equal(t, "x sk-0123456789", none.Redact("x sk-0123456789"))
	require.Equal(t, []string{"pa55word", "pa55word", "k-1"}, tool.URLSecrets("https://u:pa55word@h/p?api_key=k-1&units=metric"))
}
