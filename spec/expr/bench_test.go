package expr_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The per-step cost a workflow runner pays for expressions: a condition and
// an input template, evaluated against typical variables.
func BenchmarkEvalCondition(b *testing.B) {
	x, err := testEnvB(b).Compile(`size(steps.research.output) > 3 && input.topic.startsWith('tech')`)
	require.NoError(b, err)
	for b.Loop() {
		if _, err := x.EvalBool(b.Context(), testVars); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderTemplate(b *testing.B) {
	tpl, err := testEnvB(b).CompileTemplate(`Write about {{ input.topic }} using {{ steps.research.output }} ({{ input.sections }})`)
	require.NoError(b, err)
	for b.Loop() {
		if _, err := tpl.Render(b.Context(), testVars); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	env := testEnvB(b)
	for b.Loop() {
		if _, err := env.Compile(`size(steps.research.output) > 3 && input.topic.startsWith('tech')`); err != nil {
			b.Fatal(err)
		}
	}
}
