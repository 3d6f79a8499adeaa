package expr

import (
	"context"
	"strings"
)

// Segment is one piece of a parsed template: literal text, or the source of
// an expression written between {{ and }}. Offset is the byte offset in the
// template where the text or the expression (after {{) starts.
type Segment struct {
	Text   string
	Expr   bool
	Offset int
}

// ParseTemplate splits a template into literal text and expression holes,
// checking only the braces: every {{ needs a matching }}, and a hole must
// hold an expression. Inside a hole, }} within a CEL string literal does not
// close it ({{ '}}' }} is the text }}). A }} outside any hole is literal text,
// so JSON such as {"a": {"b": 1}} needs no escaping.
func ParseTemplate(src string) ([]Segment, error) {
	var segs []Segment
	lit := 0 // start of the pending literal text
	for i := 0; i < len(src); {
		j := strings.Index(src[i:], "{{")
		if j < 0 {
			break
		}
		open := i + j
		start := open + 2
		end, ok := closeHole(src, start)
		if !ok {
			return nil, &Error{Offset: open, Msg: errUnclosed.Error()}
		}
		if open > lit {
			segs = append(segs, Segment{Text: src[lit:open], Offset: lit})
		}
		body := src[start:end]
		if strings.TrimSpace(body) == "" {
			return nil, &Error{Offset: open, Msg: "empty {{ }}: write an expression inside, such as {{ input.message }}"}
		}
		segs = append(segs, Segment{Text: body, Expr: true, Offset: start})
		i = end + 2
		lit = i
	}
	if lit < len(src) {
		segs = append(segs, Segment{Text: src[lit:], Offset: lit})
	}
	return segs, nil
}

// closeHole returns the offset of the }} closing a hole whose expression
// starts at from, skipping CEL string literals.
func closeHole(src string, from int) (int, bool) {
	for i := from; i < len(src); i++ {
		switch c := src[i]; {
		case c == '"' || c == '\'':
			end, ok := skipString(src, i)
			if !ok {
				return 0, false
			}
			i = end
		case c == '}' && i+1 < len(src) && src[i+1] == '}':
			return i, true
		}
	}
	return 0, false
}

// skipString returns the offset of the quote closing the string literal
// opening at i (single, double or triple quoted, with backslash escapes).
func skipString(src string, i int) (int, bool) {
	q := src[i]
	if strings.HasPrefix(src[i:], strings.Repeat(string(q), 3)) {
		end := strings.Index(src[i+3:], strings.Repeat(string(q), 3))
		if end < 0 {
			return 0, false
		}
		return i + 3 + end + 2, true
	}
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case q:
			return j, true
		case '\n':
			return 0, false
		}
	}
	return 0, false
}

// Template is a compiled template: literal text and checked expressions.
// It is immutable and safe for concurrent use.
type Template struct {
	src   string
	parts []part
}

type part struct {
	text   string
	expr   *Expr
	offset int
}

// CompileTemplate parses src and compiles every hole against e. Errors are
// *Error with offsets into src.
func (e *Env) CompileTemplate(src string) (*Template, error) {
	segs, err := ParseTemplate(src)
	if err != nil {
		return nil, err
	}
	t := &Template{src: src}
	for _, s := range segs {
		if !s.Expr {
			t.parts = append(t.parts, part{text: s.Text, offset: s.Offset})
			continue
		}
		x, err := e.Compile(s.Text)
		if err != nil {
			ee := err.(*Error)
			return nil, &Error{Offset: s.Offset + ee.Offset, Msg: ee.Msg}
		}
		t.parts = append(t.parts, part{expr: x, offset: s.Offset})
	}
	return t, nil
}

// Source returns the template as written.
func (t *Template) Source() string { return t.src }

// Static reports whether the template has no expressions.
func (t *Template) Static() bool {
	for _, p := range t.parts {
		if p.expr != nil {
			return false
		}
	}
	return true
}

// Exprs returns the template's expressions in order.
func (t *Template) Exprs() []*Expr {
	var out []*Expr
	for _, p := range t.parts {
		if p.expr != nil {
			out = append(out, p.expr)
		}
	}
	return out
}

// Refs returns the members of root the template refers to, with offsets in
// the template's source.
func (t *Template) Refs(root string) []Ref {
	var out []Ref
	for _, p := range t.parts {
		if p.expr == nil {
			continue
		}
		for _, r := range p.expr.Refs(root) {
			out = append(out, Ref{Name: r.Name, Offset: p.offset + r.Offset})
		}
	}
	return out
}

// Render evaluates every hole and joins the parts: a string result is
// inserted as is, anything else as JSON (null for null).
func (t *Template) Render(ctx context.Context, vars Vars) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := p.expr.Eval(ctx, vars)
		if err != nil {
			return "", err
		}
		if s, ok := v.(string); ok {
			b.WriteString(s)
			continue
		}
		s, err := toJSON(v)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	return b.String(), nil
}
