package builtin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/tool"
)

func TestCalculator(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want string
	}{
		{"1 + 2", "3"},
		{"2 + 3 * 4", "14"},
		{"(2 + 3) * 4", "20"},
		{"10 - 4 - 3", "3"}, // left-associative
		{"100 / 10 / 5", "2"},
		{"7 % 3", "1"},
		{"-7 % 3", "-1"},
		{"2 ^ 3 ^ 2", "512"}, // right-associative
		{"2 ** 3 ** 2", "512"},
		{"(2 ^ 3) ^ 2", "64"},
		{"-2 ^ 2", "-4"}, // unary minus binds looser than power
		{"(-2) ^ 2", "4"},
		{"2 ^ -1", "0.5"},
		{"--3", "3"},
		{"+4", "4"},
		{"2 * -3", "-6"},
		{"0.1 + 0.2", "0.30000000000000004"},
		{".5 * 4", "2"},
		{"1.5e3", "1500"},
		{"2.5E-3 * 2", "0.005"},
		{"1e21", "1e+21"},
		{"1e-7", "1e-07"},
		{"1234567 * 1000", "1234567000"},
		{"10 / 4", "2.5"},
		{"1 / 3", "0.3333333333333333"},
		{"sqrt(16)", "4"},
		{"abs(-3.5)", "3.5"},
		{"round(2.5)", "3"},
		{"round(-2.5)", "-3"},
		{"round(3.14159, 2)", "3.14"},
		{"floor(-1.5)", "-2"},
		{"ceil(1.2)", "2"},
		{"ln(e)", "1"},
		{"log10(1000)", "3"},
		{"exp(0)", "1"},
		{"sin(0)", "0"},
		{"cos(pi)", "-1"},
		{"tan(0)", "0"},
		{"min(3, 1, 2)", "1"},
		{"max(3, 1, 2)", "3"},
		{"pow(2, 10)", "1024"},
		{"PI", "3.141592653589793"},
		{"2 * pi", "6.283185307179586"},
		{"sqrt(3^2 + 4^2)", "5"},
		{"  ( ( 1 ) )  ", "1"},
		{"-0", "0"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := calculator{}.Call(context.Background(), args(t, map[string]any{"expression": tc.expr}))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCalculatorErrors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		err  string
	}{
		{"", "empty expression"},
		{"   ", "empty expression"},
		{"1 / 0", "division by zero at position 3"},
		{"5 % (2 - 2)", "division by zero (remainder) at position 3"},
		{"0 ^ -1", "division by zero"},
		{"1 +", "syntax error at position 4: unexpected end of expression"},
		{"1 + * 2", "syntax error at position 5: unexpected '*'"},
		{"(1 + 2", "syntax error at position 7: missing ')' to close '(' at position 1"},
		{"1 + 2)", "syntax error at position 6: unexpected ')'"},
		{"1.2.3", "syntax error at position 4: unexpected '.'"},
		{".", `syntax error at position 1: invalid number "."`},
		{"2e", "syntax error at position 2: unexpected 'e'"},
		{"2 3", "syntax error at position 3: unexpected '3'"},
		{"1e400", "number 1e400 is too large"},
		{"foo + 1", `unknown name "foo" at position 1`},
		{"log(10)", "use ln for the natural logarithm or log10"},
		{"x", "functions: abs, ceil, cos, exp, floor, ln, log10, max, min, pow, round, sin, sqrt, tan; constants: e, pi"},
		{"sqrt", "sqrt is a function: write sqrt(...)"},
		{"pi(2)", "pi is a constant, not a function"},
		{"sqrt(1, 2)", "sqrt at position 1 takes 1 argument, got 2"},
		{"pow(2)", "pow at position 1 takes 2 arguments, got 1"},
		{"max()", "max at position 1 takes at least 1 argument(s), got 0"},
		{"max(1 2)", "expected ',' or ')' in max(...)"},
		{"min(1,", "unexpected end of expression"},
		{"sqrt(-1)", "sqrt of a negative number is not a real number"},
		{"ln(0)", "ln is only defined for positive numbers"},
		{"log10(-1)", "log10 is only defined for positive numbers"},
		{"(-8) ^ (1/3)", "undefined power"},
		{"10 ^ 400", "the result is too large (overflow)"},
		{"exp(1000)", "overflow"},
		{"round(1, 0.5)", "digits must be a whole number"},
		{"1 $ 2", "unexpected '$'"},
		{"os.exit(1)", `unknown name "os"`},
		{strings.Repeat("1+", 500) + "1", "expression is too long: 1001 characters, the limit is 1000"},
		{strings.Repeat("(", 150) + "1" + strings.Repeat(")", 150), "nested too deeply"},
		{strings.Repeat("-", 200) + "1", "nested too deeply"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := calculator{}.Call(context.Background(), args(t, map[string]any{"expression": tc.expr}))
			require.ErrorIs(t, err, tool.ErrInvalidArguments)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestCalculatorArguments(t *testing.T) {
	_, err := calculator{}.Call(context.Background(), json.RawMessage(`{}`))
	require.ErrorIs(t, err, tool.ErrInvalidArguments)
	require.ErrorContains(t, err, `missing required argument "expression"`)
	_, err = calculator{}.Call(context.Background(), json.RawMessage(`{"expression": 3}`))
	require.ErrorIs(t, err, tool.ErrInvalidArguments)
}

func args(t *testing.T, v map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
