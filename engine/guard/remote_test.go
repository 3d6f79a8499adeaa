package guard

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

func TestParseJudgement(t *testing.T) {
	tests := []struct {
		answer  string
		block   bool
		reason  string
		invalid bool
	}{
		{"ALLOW", false, "", false},
		{"allow.", false, "", false},
		{"BLOCK", true, "the judge model answered BLOCK", false},
		{"BLOCK: insults the reader", true, "insults the reader", false},
		{"**BLOCK** - threatens violence", true, "threatens violence", false},
		{"Block\nit is spam", true, "it is spam", false},
		{"I think this is fine", false, "", true},
		{"", false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.answer, func(t *testing.T) {
			v, err := parseJudgement(tt.answer)
			if tt.invalid {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.block, v.block)
			require.Equal(t, tt.reason, v.reason)
		})
	}
}

func TestNewWithoutGuardrailsIsNil(t *testing.T) {
	s, err := New(spec.Guardrails{}, Who{Name: "a"}, Options{})
	require.NoError(t, err)
	require.Nil(t, s, "no Set, so the runner's Guardrails stay a nil interface")
}
