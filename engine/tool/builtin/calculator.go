package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// calculator evaluates arithmetic with a small recursive-descent parser written
// for the purpose: a model's expression is data, never code, so nothing here
// reaches reflection, a scripting engine or the shell.
type calculator struct{}

var _ tool.Tool = calculator{}

// calculatorModule registers calculator, which has no options.
func calculatorModule() tool.Module {
	return tool.Module{Type: "calculator", Builtin: true,
		New: func(context.Context, *spec.Tool, tool.Deps) (tool.Tool, error) { return calculator{}, nil }}
}

// Limits that keep a hostile expression from costing more than a trivial one.
const (
	maxExprLen   = 1000 // characters
	maxExprDepth = 100  // nested parentheses, calls and unary operators
)

var calculatorDef = model.ToolDef{
	Name: "calculator",
	Description: "Evaluates an arithmetic expression exactly as written and returns the number. " +
		"Supports + - * / % (remainder), ^ (power, right-associative; ** also works), unary minus, parentheses, " +
		"the functions sqrt abs round floor ceil ln log10 exp sin cos tan (radians) min max pow, " +
		"and the constants pi and e. round(x, digits) rounds to decimal places. Use it for any arithmetic instead of computing in your head.",
	Parameters: object(map[string]any{
		"expression": map[string]any{
			"type":        "string",
			"description": `The expression, such as "(3.5 + 2) * 4^2 / sqrt(2)". At most 1000 characters.`,
		},
	}, "expression"),
}

func (calculator) Def() model.ToolDef { return calculatorDef }

func (calculator) Call(ctx context.Context, args json.RawMessage) (string, error) {
	var a struct {
		Expression *string `json:"expression"`
	}
	if err := tool.Decode(args, &a); err != nil {
		return "", err
	}
	if a.Expression == nil {
		return "", tool.ArgumentError("missing required argument \"expression\"")
	}
	v, err := evaluate(*a.Expression)
	if err != nil {
		return "", tool.ArgumentError("%v", err)
	}
	return formatNumber(v), nil
}

// evaluate computes an arithmetic expression in the calculator's language.
func evaluate(expr string) (float64, error) {
	if n := utf8.RuneCountInString(expr); n > maxExprLen {
		return 0, fmt.Errorf("expression is too long: %d characters, the limit is %d", n, maxExprLen)
	}
	p := &parser{src: []rune(expr)}
	if p.skipSpace(); p.eof() {
		return 0, errors.New("empty expression")
	}
	v, err := p.expr()
	if err != nil {
		return 0, err
	}
	if p.skipSpace(); !p.eof() {
		return 0, p.unexpected()
	}
	switch {
	case math.IsNaN(v):
		return 0, errors.New("the result is undefined (not a real number)")
	case math.IsInf(v, 0):
		return 0, errors.New("the result is too large (overflow)")
	}
	return v, nil
}

// formatNumber writes v in plain decimal when that is readable — integers
// without ".0", fractions without exponent between 1e-6 and 1e21, as
// JavaScript does — and otherwise with the shortest exact exponent form.
func formatNumber(v float64) string {
	if v == 0 {
		return "0" // also for -0
	}
	if a := math.Abs(v); a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// parser is a recursive-descent evaluator over this grammar:
//
//	expr    = term { ("+" | "-") term }
//	term    = unary { ("*" | "/" | "%") unary }
//	unary   = ("-" | "+") unary | power
//	power   = primary [ ("^" | "**") unary ]
//	primary = number | name | name "(" [ expr { "," expr } ] ")" | "(" expr ")"
//
// Unary minus binds looser than power (-2^2 is -4) and the exponent may carry
// its own sign (2^-1), which also makes power right-associative.
type parser struct {
	src   []rune
	pos   int
	depth int
}

// errorf reports a syntax error at a 1-based character position.
func (p *parser) errorf(pos int, format string, args ...any) error {
	return fmt.Errorf("syntax error at position %d: %s", pos+1, fmt.Sprintf(format, args...))
}

func (p *parser) unexpected() error {
	if p.eof() {
		return p.errorf(p.pos, "unexpected end of expression")
	}
	return p.errorf(p.pos, "unexpected %q", p.src[p.pos])
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

func (p *parser) peek() rune {
	if p.eof() {
		return 0
	}
	return p.src[p.pos]
}

func (p *parser) peekAt(i int) rune {
	if p.pos+i >= len(p.src) {
		return 0
	}
	return p.src[p.pos+i]
}

func (p *parser) skipSpace() {
	for !p.eof() && unicode.IsSpace(p.src[p.pos]) {
		p.pos++
	}
}

// enter bounds recursion, so deeply nested input fails fast instead of
// exhausting the stack.
func (p *parser) enter() error {
	p.depth++
	if p.depth > maxExprDepth {
		return fmt.Errorf("expression is nested too deeply at position %d: the limit is %d levels", p.pos+1, maxExprDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) expr() (float64, error) {
	if err := p.enter(); err != nil {
		return 0, err
	}
	defer p.leave()
	v, err := p.term()
	if err != nil {
		return 0, err
	}
	for {
		p.skipSpace()
		op := p.peek()
		if op != '+' && op != '-' {
			return v, nil
		}
		p.pos++
		r, err := p.term()
		if err != nil {
			return 0, err
		}
		if op == '+' {
			v += r
		} else {
			v -= r
		}
	}
}

func (p *parser) term() (float64, error) {
	v, err := p.unary()
	if err != nil {
		return 0, err
	}
	for {
		p.skipSpace()
		op, at := p.peek(), p.pos
		if (op != '*' && op != '/' && op != '%') || (op == '*' && p.peekAt(1) == '*') {
			return v, nil
		}
		p.pos++
		r, err := p.unary()
		if err != nil {
			return 0, err
		}
		switch op {
		case '*':
			v *= r
		case '/':
			if r == 0 {
				return 0, fmt.Errorf("division by zero at position %d", at+1)
			}
			v /= r
		case '%':
			if r == 0 {
				return 0, fmt.Errorf("division by zero (remainder) at position %d", at+1)
			}
			v = math.Mod(v, r)
		}
	}
}

func (p *parser) unary() (float64, error) {
	if err := p.enter(); err != nil {
		return 0, err
	}
	defer p.leave()
	p.skipSpace()
	switch p.peek() {
	case '-':
		p.pos++
		v, err := p.unary()
		return -v, err
	case '+':
		p.pos++
		return p.unary()
	}
	return p.power()
}

func (p *parser) power() (float64, error) {
	base, err := p.primary()
	if err != nil {
		return 0, err
	}
	p.skipSpace()
	at := p.pos
	switch {
	case p.peek() == '^':
		p.pos++
	case p.peek() == '*' && p.peekAt(1) == '*':
		p.pos += 2
	default:
		return base, nil
	}
	exp, err := p.unary()
	if err != nil {
		return 0, err
	}
	v, err := pow(base, exp)
	if err != nil {
		return 0, fmt.Errorf("%w (at position %d)", err, at+1)
	}
	return v, nil
}

func pow(base, exp float64) (float64, error) {
	if base == 0 && exp < 0 {
		return 0, errors.New("division by zero: 0 raised to a negative power")
	}
	v := math.Pow(base, exp)
	if math.IsNaN(v) {
		return 0, errors.New("undefined power: a negative number raised to a fractional power is not a real number")
	}
	return v, nil
}

func (p *parser) primary() (float64, error) {
	p.skipSpace()
	start := p.pos
	switch c := p.peek(); {
	case c == '(':
		p.pos++
		v, err := p.expr()
		if err != nil {
			return 0, err
		}
		p.skipSpace()
		if p.peek() != ')' {
			if p.eof() {
				return 0, p.errorf(p.pos, "missing ')' to close '(' at position %d", start+1)
			}
			return 0, p.errorf(p.pos, "expected ')' but found %q", p.peek())
		}
		p.pos++
		return v, nil
	case c >= '0' && c <= '9' || c == '.':
		return p.number()
	case unicode.IsLetter(c) || c == '_':
		return p.name()
	}
	return 0, p.unexpected()
}

func (p *parser) number() (float64, error) {
	start := p.pos
	digits := func() int {
		n := 0
		for c := p.peek(); c >= '0' && c <= '9'; c = p.peek() {
			p.pos++
			n++
		}
		return n
	}
	n := digits()
	if p.peek() == '.' {
		p.pos++
		n += digits()
	}
	if n == 0 {
		return 0, p.errorf(start, "invalid number %q", string(p.src[start:p.pos]))
	}
	// An exponent only if digits follow, so "2e" is the number 2 followed by
	// an unexpected "e" rather than a malformed number.
	if c := p.peek(); c == 'e' || c == 'E' {
		i := 1
		if s := p.peekAt(1); s == '+' || s == '-' {
			i = 2
		}
		if d := p.peekAt(i); d >= '0' && d <= '9' {
			p.pos += i
			digits()
		}
	}
	text := string(p.src[start:p.pos])
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) && math.IsInf(v, 0) {
			return 0, p.errorf(start, "number %s is too large", text)
		}
		if errors.Is(err, strconv.ErrRange) {
			return v, nil // underflow to zero or a denormal is still the right answer
		}
		return 0, p.errorf(start, "invalid number %q", text)
	}
	return v, nil
}

// function is a builtin function of fixed or bounded arity (max -1: any).
type function struct {
	min, max int
	call     func(args []float64) (float64, error)
}

func unaryFn(f func(float64) float64) function {
	return function{1, 1, func(a []float64) (float64, error) { return f(a[0]), nil }}
}

var functions = map[string]function{
	"sqrt": {1, 1, func(a []float64) (float64, error) {
		if a[0] < 0 {
			return 0, errors.New("sqrt of a negative number is not a real number")
		}
		return math.Sqrt(a[0]), nil
	}},
	"abs":   unaryFn(math.Abs),
	"floor": unaryFn(math.Floor),
	"ceil":  unaryFn(math.Ceil),
	"round": {1, 2, func(a []float64) (float64, error) {
		if len(a) == 1 {
			return math.Round(a[0]), nil
		}
		d := a[1]
		if d != math.Trunc(d) || d < -15 || d > 15 {
			return 0, errors.New("round: digits must be a whole number from -15 to 15")
		}
		scale := math.Pow(10, d)
		return math.Round(a[0]*scale) / scale, nil
	}},
	"ln": {1, 1, func(a []float64) (float64, error) {
		if a[0] <= 0 {
			return 0, errors.New("ln is only defined for positive numbers")
		}
		return math.Log(a[0]), nil
	}},
	"log10": {1, 1, func(a []float64) (float64, error) {
		if a[0] <= 0 {
			return 0, errors.New("log10 is only defined for positive numbers")
		}
		return math.Log10(a[0]), nil
	}},
	"exp": unaryFn(math.Exp),
	"sin": unaryFn(math.Sin),
	"cos": unaryFn(math.Cos),
	"tan": unaryFn(math.Tan),
	"min": {1, -1, func(a []float64) (float64, error) { return slices.Min(a), nil }},
	"max": {1, -1, func(a []float64) (float64, error) { return slices.Max(a), nil }},
	"pow": {2, 2, func(a []float64) (float64, error) { return pow(a[0], a[1]) }},
}

var constants = map[string]float64{"pi": math.Pi, "e": math.E}

// names lists what an expression may name, for error messages.
func names() string {
	fns := make([]string, 0, len(functions))
	for n := range functions {
		fns = append(fns, n)
	}
	slices.Sort(fns)
	return "functions: " + strings.Join(fns, ", ") + "; constants: e, pi"
}

func (p *parser) name() (float64, error) {
	start := p.pos
	for c := p.peek(); unicode.IsLetter(c) || unicode.IsDigit(c) || c == '_'; c = p.peek() {
		p.pos++
	}
	written := string(p.src[start:p.pos])
	name := strings.ToLower(written)
	p.skipSpace()
	call := p.peek() == '('

	if v, ok := constants[name]; ok {
		if call {
			return 0, p.errorf(start, "%s is a constant, not a function", written)
		}
		return v, nil
	}
	fn, ok := functions[name]
	if !ok {
		hint := ""
		if name == "log" {
			hint = " (use ln for the natural logarithm or log10)"
		}
		return 0, fmt.Errorf("unknown name %q at position %d%s; %s", written, start+1, hint, names())
	}
	if !call {
		return 0, p.errorf(p.pos, "%s is a function: write %s(...)", written, name)
	}
	p.pos++ // (
	var args []float64
	p.skipSpace()
	if p.peek() == ')' {
		p.pos++
	} else {
		for {
			v, err := p.expr()
			if err != nil {
				return 0, err
			}
			args = append(args, v)
			p.skipSpace()
			if p.peek() == ',' {
				p.pos++
				continue
			}
			if p.peek() == ')' {
				p.pos++
				break
			}
			if p.eof() {
				return 0, p.errorf(p.pos, "missing ')' to close %s(", name)
			}
			return 0, p.errorf(p.pos, "expected ',' or ')' in %s(...) but found %q", name, p.peek())
		}
	}
	if len(args) < fn.min || (fn.max >= 0 && len(args) > fn.max) {
		return 0, fmt.Errorf("%s at position %d takes %s, got %d", name, start+1, arity(fn), len(args))
	}
	v, err := fn.call(args)
	if err != nil {
		return 0, fmt.Errorf("%w (at position %d)", err, start+1)
	}
	return v, nil
}

func arity(fn function) string {
	switch {
	case fn.max < 0:
		return fmt.Sprintf("at least %d argument(s)", fn.min)
	case fn.min == fn.max && fn.min == 1:
		return "1 argument"
	case fn.min == fn.max:
		return fmt.Sprintf("%d arguments", fn.min)
	}
	return fmt.Sprintf("%d to %d arguments", fn.min, fn.max)
}
