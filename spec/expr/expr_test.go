package expr_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec/expr"
)

func testEnv(t *testing.T) *expr.Env { return testEnvB(t) }

func testEnvB(t testing.TB) *expr.Env {
	t.Helper()
	env, err := expr.NewEnv(
		expr.Var{Name: "input", Type: expr.MapOf(expr.String, expr.Dyn)},
		expr.Var{Name: "message", Type: expr.String},
		expr.Var{Name: "steps", Type: expr.MapOf(expr.String, expr.MapOf(expr.String, expr.Dyn))},
		expr.Var{Name: "n", Type: expr.Int},
	)
	require.NoError(t, err)
	return env
}

var testVars = expr.Vars{
	"input":   map[string]any{"topic": "tech news", "sections": []any{"a", "b"}},
	"message": "hello",
	"steps":   map[string]any{"research": map[string]any{"output": "found it", "status": "completed"}, "json": map[string]any{"output": map[string]any{"score": 3.0}}},
	"n":       int64(4),
}

func TestCompileAndEval(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	for _, tc := range []struct {
		src  string
		want any
		typ  string
	}{
		{`message + "!"`, "hello!", "string"},
		{`size(steps.research.output) > 3`, true, "bool"},
		{`input.topic.startsWith('tech') ? 'tech' : 'general'`, "tech", "string"},
		{`input.sections`, []any{"a", "b"}, "dyn"},
		{`[1, 2, n]`, []any{int64(1), int64(2), int64(4)}, "list(int)"},
		{`steps.json.output.score * 2.0`, 6.0, "double"},
		{`{"k": message}`, map[string]any{"k": "hello"}, "map(string, string)"},
		{`message.upperAscii()`, "HELLO", "string"},
		{`steps['research'].status`, "completed", "dyn"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			x, err := env.Compile(tc.src)
			require.NoError(t, err)
			require.Equal(t, tc.typ, x.TypeName())
			got, err := x.Eval(t.Context(), testVars)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	for _, tc := range []struct {
		src    string
		offset int
		msg    string
	}{
		{`message +`, 9, "syntax error: mismatched input '<EOF>'"},
		{`size(nope) > 1`, 5, "undeclared reference to 'nope'"},
		{`n + "x"`, 2, "found no matching overload for '_+_'"},
		{`  `, 0, "empty expression"},
		{"n > 1 &&\n  bogus", 11, "undeclared reference to 'bogus'"},
		{`"é" + nope`, 7, "undeclared reference to 'nope'"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			_, err := env.Compile(tc.src)
			var e *expr.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.offset, e.Offset, e.Msg)
			require.Contains(t, e.Msg, tc.msg)
		})
	}
}

func TestReturns(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	for _, tc := range []struct {
		src  string
		want *expr.Type
		ok   bool
	}{
		{`n > 1`, expr.Bool, true},
		{`message`, expr.Bool, false},
		{`steps.x.output`, expr.Bool, true}, // dyn: checked at run time
		{`input.sections`, expr.ListOf(expr.Dyn), true},
		{`message`, expr.ListOf(expr.Dyn), false},
		{`[message]`, expr.ListOf(expr.Dyn), true},
		{`n`, expr.String, false},
	} {
		x, err := env.Compile(tc.src)
		require.NoError(t, err)
		require.Equal(t, tc.ok, x.Returns(tc.want), tc.src)
	}
}

func TestRefs(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	x, err := env.Compile(`steps.b.output + steps['a'].output + input.topic + steps.b.status`)
	require.NoError(t, err)
	require.Equal(t, []expr.Ref{{Name: "b", Offset: 0}, {Name: "a", Offset: 17}, {Name: "b", Offset: 51}}, x.Refs("steps"))
	require.Equal(t, []expr.Ref{{Name: "topic", Offset: 37}}, x.Refs("input"))

	tpl, err := env.CompileTemplate(`Use {{ steps.research.output }} and {{ steps.c.output }}`)
	require.NoError(t, err)
	require.Equal(t, []expr.Ref{{Name: "research", Offset: 7}, {Name: "c", Offset: 39}}, tpl.Refs("steps"))
}

func TestEvalErrors(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	for _, tc := range []struct {
		name, src string
		eval      func(x *expr.Expr) error
		msg       string
	}{
		{"cost", `[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, [1,2,3,4,5,6,7,8,9,10].map(d, [1,2,3,4,5,6,7,8,9,10].map(e, [1,2,3,4,5,6,7,8,9,10].map(f, a+b+c+d+e+f))))))`,
			func(x *expr.Expr) error { _, err := x.Eval(t.Context(), testVars); return err }, "cost limit"},
		{"not bool", `steps.research.output`,
			func(x *expr.Expr) error { _, err := x.EvalBool(t.Context(), testVars); return err }, "want true or false, got a string"},
		{"not list", `steps.research.output`,
			func(x *expr.Expr) error { _, err := x.EvalList(t.Context(), testVars); return err }, "want a list"},
		{"missing key", `steps.nope.output`,
			func(x *expr.Expr) error { _, err := x.Eval(t.Context(), testVars); return err }, "no such key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := env.Compile(tc.src)
			require.NoError(t, err)
			err = tc.eval(x)
			require.ErrorContains(t, err, tc.msg)
			if tc.name == "cost" {
				require.True(t, expr.ErrCost(err))
			}
		})
	}
}

func TestEvalStopsOnCancel(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	x, err := env.Compile(`[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, a+b+c > 0)))`)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = x.Eval(ctx, testVars)
	require.ErrorContains(t, err, "cancel")
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	for _, tc := range []struct {
		src, want string
	}{
		{`plain text`, `plain text`},
		{`Research {{ input.topic }}`, `Research tech news`},
		{`{{message}}{{ message }}`, `hellohello`},
		{`sections: {{ input.sections }}, n={{ n }}`, `sections: ["a","b"], n=4`},
		{`{"a": {"b": {{ n }}}}`, `{"a": {"b": 4}}`},
		{`{{ '}}' }} and {{ "{{" }}`, `}} and {{`},
		{`score {{ steps.json.output }}`, `score {"score":3}`},
		{``, ``},
	} {
		t.Run(tc.src, func(t *testing.T) {
			tpl, err := env.CompileTemplate(tc.src)
			require.NoError(t, err)
			got, err := tpl.Render(t.Context(), testVars)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, !strings.Contains(tc.src, "{{"), tpl.Static())
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	for _, tc := range []struct {
		src    string
		offset int
		msg    string
	}{
		{`Hello {{ input.topic`, 6, "unclosed {{"},
		{`Hello {{ }} there`, 6, "empty {{ }}"},
		{`Hello {{ nope }}`, 9, "undeclared reference to 'nope'"},
		{`a {{ n }} b {{ n + }}`, 19, "syntax error: mismatched input"},
		{`{{ 'unterminated }}`, 0, "unclosed {{"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			_, err := env.CompileTemplate(tc.src)
			var e *expr.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.offset, e.Offset, e.Msg)
			require.Contains(t, e.Msg, tc.msg)
		})
	}
}

func TestWithShadows(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	inner, err := env.With(expr.Var{Name: "item", Type: expr.Dyn}, expr.Var{Name: "n", Type: expr.String})
	require.NoError(t, err)
	x, err := inner.Compile(`n + item`)
	require.NoError(t, err)
	got, err := x.Eval(t.Context(), expr.Vars{"n": "a", "item": "b"})
	require.NoError(t, err)
	require.Equal(t, "ab", got)
	_, err = env.Compile(`item`)
	require.Error(t, err, "the outer environment is unchanged")
}
