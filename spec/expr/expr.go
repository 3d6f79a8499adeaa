// Package expr is the runtime expression and template language of workflows
// and triggers: CEL (github.com/google/cel-go) expressions, and templates that
// are text with {{ <CEL expression> }} holes.
//
// The syntax is chosen so it can never be confused with load-time ${VAR}
// interpolation, which the spec loader applies to the raw YAML first:
// ${...} is resolved when a file is loaded, {{ ... }} when a step runs.
//
// Everything is checked before it runs. An Env declares the variables an
// expression may use, with their CEL types (Dyn where the type is only known
// at run time); Compile parses and type-checks, and reports problems as an
// *Error carrying the byte offset inside the source, so callers can point at
// the exact column of a YAML scalar. Evaluation is bounded by CEL's cost
// limit and by the context, so an expression cannot loop or exhaust memory.
package expr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
)

// Type is a CEL type. The values below are the ones environments use.
type Type = types.Type

// Types of declared variables.
var (
	Dyn    = types.DynType
	String = types.StringType
	Bool   = types.BoolType
	Int    = types.IntType
	Double = types.DoubleType
)

// ListOf is the type of lists of elem.
func ListOf(elem *Type) *Type { return types.NewListType(elem) }

// MapOf is the type of maps from key to val.
func MapOf(key, val *Type) *Type { return types.NewMapType(key, val) }

// Limits on expressions. Sources are small by nature (a condition, a hole in
// a template); the bounds keep a hostile spec from making the checker or the
// interpreter do unbounded work.
const (
	// MaxSourceLen bounds one expression's length in code points.
	MaxSourceLen = 4096
	// DefaultCostLimit bounds one evaluation in CEL cost units (roughly one
	// per value visited or byte copied): enough for comprehensions over lists
	// of thousands of items, far below what would stall a worker.
	DefaultCostLimit = 1_000_000
	maxRecursion     = 64
)

// Var declares one variable of an environment.
type Var struct {
	Name string
	Type *Type
	// Schema, when set, is where Type comes from: its object types are
	// declared to the checker with the variable (see SchemaVar).
	Schema *Schema
}

// SchemaVar declares a variable holding values valid against s: its fields
// are typed, so the checker reports a misspelt field or a type error.
func SchemaVar(name string, s *Schema) Var { return Var{Name: name, Type: s.Type(), Schema: s} }

// Env is a set of declared variables expressions are checked against. It is
// immutable and safe for concurrent use.
type Env struct {
	env  *cel.Env
	vars []Var
}

// NewEnv returns an environment declaring vars, with CEL's standard library
// and its string extensions (lowerAscii, split, join, trim...).
func NewEnv(vars ...Var) (*Env, error) {
	opts := []cel.EnvOption{
		ext.Strings(),
		cel.ParserExpressionSizeLimit(MaxSourceLen),
		cel.ParserRecursionLimit(maxRecursion),
	}
	var schemas []*Schema
	for _, v := range vars {
		opts = append(opts, cel.Variable(v.Name, v.Type))
		if v.Schema != nil {
			schemas = append(schemas, v.Schema)
		}
	}
	if len(schemas) > 0 {
		p, err := newProvider(schemas)
		if err != nil {
			return nil, err
		}
		opts = append(opts, cel.CustomTypeProvider(p))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("declare expression variables: %w", err)
	}
	return &Env{env: env, vars: slices.Clone(vars)}, nil
}

// With returns an environment that also declares vars (a loop variable):
// a later declaration of the same name shadows the earlier one.
func (e *Env) With(vars ...Var) (*Env, error) {
	var opts []cel.EnvOption
	kept := slices.DeleteFunc(slices.Clone(e.vars), func(old Var) bool {
		return slices.ContainsFunc(vars, func(v Var) bool { return v.Name == old.Name })
	})
	if len(kept) != len(e.vars) || slices.ContainsFunc(vars, func(v Var) bool { return v.Schema != nil }) {
		// CEL refuses to redeclare a variable, and the type provider is
		// fixed when an environment is created: start again from scratch.
		return NewEnv(append(kept, vars...)...)
	}
	for _, v := range vars {
		opts = append(opts, cel.Variable(v.Name, v.Type))
	}
	env, err := e.env.Extend(opts...)
	if err != nil {
		return nil, fmt.Errorf("declare expression variables: %w", err)
	}
	return &Env{env: env, vars: append(slices.Clone(e.vars), vars...)}, nil
}

// Vars returns the declared variables.
func (e *Env) Vars() []Var { return slices.Clone(e.vars) }

// Error is a problem in an expression or template. Offset is the byte offset
// in the source where it was found.
type Error struct {
	Offset int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("at offset %d: %s", e.Offset, e.Msg) }

// Expr is a compiled, type-checked expression ready to evaluate. It is
// immutable and safe for concurrent use.
type Expr struct {
	src string
	ast *cel.Ast
	prg cel.Program
}

// Compile parses and type-checks src. The error, if any, is an *Error.
func (e *Env) Compile(src string) (*Expr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Offset: 0, Msg: "empty expression"}
	}
	ast, iss := e.env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, issueError(src, iss)
	}
	prg, err := e.env.Program(ast,
		cel.CostLimit(DefaultCostLimit),
		cel.InterruptCheckFrequency(100),
		cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &Error{Offset: 0, Msg: err.Error()}
	}
	return &Expr{src: src, ast: ast, prg: prg}, nil
}

// issueError turns CEL's first issue into an *Error at its byte offset.
func issueError(src string, iss *cel.Issues) *Error {
	errs := iss.Errors()
	if len(errs) == 0 {
		return &Error{Msg: firstLine(iss.Err().Error())}
	}
	first := errs[0]
	return &Error{Offset: locationOffset(src, first.Location), Msg: cleanMessage(first.Message)}
}

// cleanMessage drops CEL's "Syntax error: " prefix style noise while keeping
// the rest of the message as CEL wrote it.
func cleanMessage(s string) string {
	s = firstLine(s)
	s = strings.ReplaceAll(s, " (in container '')", "")
	if strings.HasPrefix(s, "Syntax error: ") {
		// CEL lists every token it would accept: too long to help.
		s, _, _ = strings.Cut(s, " expecting ")
		s = "syntax error: " + strings.TrimPrefix(s, "Syntax error: ")
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// locationOffset converts CEL's 1-based line and 0-based code point column
// to a byte offset in src.
func locationOffset(src string, loc common.Location) int {
	if loc == nil || loc.Line() <= 0 {
		return 0
	}
	off := 0
	for line := 1; line < loc.Line(); line++ {
		i := strings.IndexByte(src[off:], '\n')
		if i < 0 {
			return len(src)
		}
		off += i + 1
	}
	return runeOffset(src, off, loc.Column())
}

// runeOffset returns the byte offset n code points after byte offset from.
func runeOffset(src string, from, n int) int {
	off := from
	for ; n > 0 && off < len(src); n-- {
		_, size := utf8.DecodeRuneInString(src[off:])
		off += size
	}
	return off
}

// Source returns the expression as written.
func (x *Expr) Source() string { return x.src }

// OutputType is the type the checker inferred for the result.
func (x *Expr) OutputType() *Type { return x.ast.OutputType() }

// Returns reports whether the expression's result can be of type want: its
// inferred type is want, or dyn (known only at run time). For lists and maps
// only the kind is compared, so ListOf(Dyn) accepts any list.
func (x *Expr) Returns(want *Type) bool {
	got := x.OutputType()
	switch {
	case got.Kind() == types.DynKind || got.Kind() == types.AnyKind:
		return true
	case want.Kind() == types.ListKind || want.Kind() == types.MapKind:
		return got.Kind() == want.Kind()
	}
	return got.IsExactType(want)
}

// TypeName is the inferred result type as CEL prints it (string, list(dyn)...).
func (x *Expr) TypeName() string { return x.OutputType().String() }

// Vars holds the values of an environment's variables for one evaluation.
// Values are Go values: strings, bools, ints, float64, []any, map[string]any
// (what encoding/json produces).
type Vars map[string]any

// Eval evaluates the expression. The result is converted to plain Go values
// (string, bool, int64, uint64, float64, []byte, nil, []any, map[string]any).
// Evaluation stops with an error when it exceeds the cost limit or ctx ends.
func (x *Expr) Eval(ctx context.Context, vars Vars) (any, error) {
	val, _, err := x.prg.ContextEval(ctx, map[string]any(vars))
	if err != nil {
		return nil, fmt.Errorf("evaluate %q: %w", x.src, err)
	}
	return native(val)
}

// EvalBool evaluates a condition. A non-boolean result is an error.
func (x *Expr) EvalBool(ctx context.Context, vars Vars) (bool, error) {
	v, err := x.Eval(ctx, vars)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("evaluate %q: want true or false, got %s", x.src, describe(v))
	}
	return b, nil
}

// EvalString evaluates an expression that must produce a string.
func (x *Expr) EvalString(ctx context.Context, vars Vars) (string, error) {
	v, err := x.Eval(ctx, vars)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("evaluate %q: want a string, got %s", x.src, describe(v))
	}
	return s, nil
}

// EvalList evaluates an expression that must produce a list.
func (x *Expr) EvalList(ctx context.Context, vars Vars) ([]any, error) {
	v, err := x.Eval(ctx, vars)
	if err != nil {
		return nil, err
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("evaluate %q: want a list, got %s", x.src, describe(v))
	}
	return l, nil
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, uint64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}

var anyType = reflect.TypeFor[any]()

// native converts a CEL value to plain Go values.
func native(v ref.Val) (any, error) {
	switch v.Type() {
	case types.NullType:
		return nil, nil
	case types.StringType, types.BoolType, types.IntType, types.UintType, types.DoubleType, types.BytesType:
		return v.Value(), nil
	}
	switch t := v.(type) {
	case traits.Mapper:
		out := map[string]any{}
		for it := t.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			val, err := native(t.Get(k))
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k.Value())] = val
		}
		return out, nil
	case traits.Lister:
		var out []any
		for it := t.Iterator(); it.HasNext() == types.True; {
			val, err := native(it.Next())
			if err != nil {
				return nil, err
			}
			out = append(out, val)
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	}
	if x, err := v.ConvertToNative(anyType); err == nil {
		return x, nil
	}
	return fmt.Sprint(v.Value()), nil
}

// Ref is a reference to a member of a variable: steps.research in
// steps.research.output. Offset is the byte offset of the variable's name.
type Ref struct {
	Name   string
	Offset int
}

// Refs returns the members of variable root the expression refers to, as
// root.name or root['name'], in order of appearance. Workflows use it to check
// that every steps.<name> is a step that runs earlier.
func (x *Expr) Refs(root string) []Ref {
	native := x.ast.NativeRep()
	info := native.SourceInfo()
	var out []Ref
	celast.PreOrderVisit(native.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		var operand celast.Expr
		var name string
		switch e.Kind() {
		case celast.SelectKind:
			operand, name = e.AsSelect().Operand(), e.AsSelect().FieldName()
		case celast.CallKind:
			call := e.AsCall()
			if call.FunctionName() != operators.Index || len(call.Args()) != 2 || call.Args()[1].Kind() != celast.LiteralKind {
				return
			}
			s, ok := call.Args()[1].AsLiteral().(types.String)
			if !ok {
				return
			}
			operand, name = call.Args()[0], string(s)
		default:
			return
		}
		if operand.Kind() != celast.IdentKind || operand.AsIdent() != root {
			return
		}
		off := 0
		if r, ok := info.GetOffsetRange(operand.ID()); ok {
			off = runeOffset(x.src, 0, int(r.Start))
		}
		out = append(out, Ref{Name: name, Offset: off})
	}))
	slices.SortStableFunc(out, func(a, b Ref) int { return a.Offset - b.Offset })
	return out
}

// ErrCost reports whether err is an evaluation stopped by the cost limit.
func ErrCost(err error) bool {
	return err != nil && strings.Contains(err.Error(), "cost limit")
}

// toJSON renders a non-string template value.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("render value as JSON: %w", err)
	}
	return string(b), nil
}

var errUnclosed = errors.New("unclosed {{: close the expression with }}")
