package spec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in a spec file. Line and Col are 1-based; zero means unknown.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	default:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
}

// Severity tells whether a diagnostic blocks the object it concerns.
type Severity int

const (
	// Error marks the object broken: it is not served (its last good version is).
	Error Severity = iota
	// Warning is shown but never blocks a reload.
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// MarshalText makes severities readable in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Diagnostic is one problem found in the specs, printed like a compiler message:
//
//	agents.d/research.yaml:14:9: agents.researcher.tools[1]: unknown tool "web_serch" (did you mean "web_search"?)
type Diagnostic struct {
	Pos      Pos      `json:"pos"`
	Path     string   `json:"path,omitempty"` // object path such as agents.support.tools[1]
	Severity Severity `json:"severity"`
	Msg      string   `json:"message"`
	// Code names, for programs, a kind of problem that commands and
	// clients act on (CodeMissingAPIKey); most diagnostics have none.
	Code string `json:"code,omitempty"`
}

// CodeMissingAPIKey marks the diagnostic of an object that cannot run
// because its model's provider has no API key: commands say "set the key"
// once for all of them.
const CodeMissingAPIKey = "missing_api_key"

func (d Diagnostic) Error() string {
	var b strings.Builder
	b.WriteString(d.Pos.String())
	b.WriteString(": ")
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	if d.Severity == Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Diagnostics is a list of problems. It implements error so callers can return it
// and unwrap individual diagnostics with errors.As.
type Diagnostics []Diagnostic

func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each diagnostic to errors.Is and errors.As.
func (ds Diagnostics) Unwrap() []error {
	errs := make([]error, len(ds))
	for i, d := range ds {
		errs[i] = d
	}
	return errs
}

// HasErrors reports whether any diagnostic is an error rather than a warning.
func (ds Diagnostics) HasErrors() bool {
	return slices.ContainsFunc(ds, func(d Diagnostic) bool { return d.Severity == Error })
}

// Errors returns only the error-severity diagnostics.
func (ds Diagnostics) Errors() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == Error {
			out = append(out, d)
		}
	}
	return out
}

// Sort orders diagnostics by file, line, column, then path and message, so output
// is stable and reads top to bottom like a compiler's.
func (ds Diagnostics) Sort() {
	slices.SortStableFunc(ds, compareDiagnostics)
}

func compareDiagnostics(a, b Diagnostic) int {
	return cmp.Or(
		cmp.Compare(a.Pos.File, b.Pos.File),
		cmp.Compare(a.Pos.Line, b.Pos.Line),
		cmp.Compare(a.Pos.Col, b.Pos.Col),
		cmp.Compare(a.Path, b.Path),
		cmp.Compare(a.Msg, b.Msg),
	)
}

// sorted returns a sorted copy without duplicates.
func (ds Diagnostics) sorted() Diagnostics {
	out := slices.Clone(ds)
	out.Sort()
	return slices.Compact(out)
}
