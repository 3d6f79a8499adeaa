package expr_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec/expr"
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

// The same condition over an input typed by its JSON Schema: typing is a
// check-time matter, so evaluation should cost the same.
func BenchmarkEvalConditionTyped(b *testing.B) {
	env, s := schemaEnv(b)
	x, err := env.Compile(`input.count > 3 && input.topic.startsWith('tech')`)
	require.NoError(b, err)
	in, err := s.Coerce(map[string]any{"topic": "tech news", "count": 4.0})
	require.NoError(b, err)
	vars := expr.Vars{"input": in, "n": int64(1)}
	for b.Loop() {
		if _, err := x.EvalBool(b.Context(), vars); err != nil {
			b.Fatal(err)
		}
	}
}
