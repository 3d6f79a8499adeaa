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

func schemaEnv(t testing.TB) (*expr.Env, *expr.Schema) {
	t.Helper()
	s := expr.NewSchema("input", map[string]any{
		"type": "object",
		"properties": map[string]any{
			"topic": map[string]any{"type": "string"},
			"count": map[string]any{"type": "integer"},
			"ratio": map[string]any{"type": "number"},
			"draft": map[string]any{"type": "boolean"},
			"tags":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			"any":   map[string]any{"type": "array"},
			"address": map[string]any{"type": "object", "additionalProperties": false, "properties": map[string]any{
				"city": map[string]any{"type": "string"},
				"zip":  map[string]any{"type": "integer"},
			}},
			"free": map[string]any{"type": "object"},
		},
	})
	env, err := expr.NewEnv(expr.SchemaVar("input", s), expr.Var{Name: "n", Type: expr.Int})
	require.NoError(t, err)
	return env, s
}

func TestSchemaTypes(t *testing.T) {
	t.Parallel()
	env, s := schemaEnv(t)
	in, err := s.Coerce(map[string]any{"topic": "go", "count": 3.0, "ratio": 2.0, "draft": true,
		"tags": []any{"a"}, "address": map[string]any{"city": "Oslo", "zip": 150.0}, "extra": 1.5})
	require.NoError(t, err)
	vars := expr.Vars{"input": in, "n": int64(1)}
	for _, tc := range []struct {
		src  string
		want any
		typ  string
	}{
		{`input.count + n`, int64(4), "int"},
		{`input.ratio * 2.0`, 4.0, "double"},
		{`input.topic + "!"`, "go!", "string"},
		{`!input.draft`, false, "bool"},
		{`input.tags[0]`, "a", "string"},
		{`input.address.zip - 50`, int64(100), "int"},
		{`input.address.city`, "Oslo", "string"},
		{`input.extra`, 1.5, "dyn"}, // additional properties are allowed by default
		{`has(input.address) && has(input.address.city)`, true, "bool"},
		{`input.count > 2 ? "many" : "few"`, "many", "string"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			x, err := env.Compile(tc.src)
			require.NoError(t, err)
			require.Equal(t, tc.typ, x.TypeName())
			got, err := x.Eval(t.Context(), vars)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestSchemaTypeErrors(t *testing.T) {
	t.Parallel()
	env, _ := schemaEnv(t)
	for _, tc := range []struct {
		src    string
		offset int
		msg    string
	}{
		{`input.count + "x"`, 12, "found no matching overload for '_+_' applied to '(int, string)'"},
		{`input.address.cty == "Oslo"`, 13, "undefined field 'cty'"},
		{`input.address.zip + "1"`, 18, "found no matching overload for '_+_' applied to '(int, string)'"},
		{`input.topic > 1`, 12, "found no matching overload for '_>_' applied to '(string, int)'"},
		{`input.tags[0] + 1`, 14, "found no matching overload"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			_, err := env.Compile(tc.src)
			var e *expr.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.offset, e.Offset)
			require.Contains(t, e.Msg, tc.msg)
		})
	}
}

func TestSchemaCoerce(t *testing.T) {
	t.Parallel()
	_, s := schemaEnv(t)
	got, err := s.Coerce(map[string]any{"count": 7.0, "ratio": 1, "address": map[string]any{"zip": 1.0}})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"count": int64(7), "ratio": 1.0, "address": map[string]any{"zip": int64(1)}}, got)
	for _, tc := range []struct {
		in  map[string]any
		msg string
	}{
		{map[string]any{"count": 2.5}, "input.count must be an integer, got 2.5"},
		{map[string]any{"address": map[string]any{"zip": 0.1}}, "input.address.zip must be an integer, got 0.1"},
	} {
		_, err := s.Coerce(tc.in)
		require.EqualError(t, err, tc.msg)
	}
}
