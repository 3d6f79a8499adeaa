// Package tool defines what agents can call: the Tool interface, toolsets whose
// tools are discovered at run time (MCP servers), and the limits applied to every
// tool result before it reaches a model.
//
// A Registry of Modules builds tools by Tool document type and builtin name
// (engine.DefaultTools is the product's). Implementations live in
// subpackages: builtin (current_time, calculator, http_fetch,
// knowledge_search), httptool (declarative HTTP tools from YAML) and mcp
// (Model Context Protocol servers); each provides its Module. egress holds the
// outbound-connection policy the HTTP-based tools share.
package tool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
)

// References collects the knowledge passages tools used during one run, so the
// run can report them. Safe for concurrent use by parallel tool calls.
type References struct {
	mu   sync.Mutex
	seen map[string]bool
	list []event.Reference
}

// Add records references, ignoring chunks already recorded.
func (r *References) Add(refs ...event.Reference) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	for _, ref := range refs {
		if !r.seen[ref.ChunkID] {
			r.seen[ref.ChunkID] = true
			r.list = append(r.list, ref)
		}
	}
}

// List returns the recorded references in the order they were added.
func (r *References) List() []event.Reference {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

type referencesKey struct{}

// WithReferences returns a context whose tool calls record into r.
func WithReferences(ctx context.Context, r *References) context.Context {
	return context.WithValue(ctx, referencesKey{}, r)
}

// AddReferences records references for the run ctx belongs to, if any.
func AddReferences(ctx context.Context, refs ...event.Reference) {
	if r, ok := ctx.Value(referencesKey{}).(*References); ok {
		r.Add(refs...)
	}
}

// Tool is one callable tool. Implementations are safe for concurrent use: one
// instance serves every run of every agent that lists it.
type Tool interface {
	// Def describes the tool to models. The returned value must not be modified.
	Def() model.ToolDef
	// Call runs the tool. args is the JSON object the model wrote. An error is
	// shown to the model as a tool error, so its message must say what went
	// wrong in words a model can act on, and must never contain secrets.
	// Call must return promptly when ctx is cancelled.
	Call(ctx context.Context, args json.RawMessage) (string, error)
}

// Toolset provides tools known only at run time, such as an MCP server's.
// Tools starts the toolset on first use and returns its current tools.
type Toolset interface {
	Tools(ctx context.Context) ([]Tool, error)
}

// Closer is implemented by tools and toolsets that hold resources.
type Closer interface {
	Close() error
}

// ErrInvalidArguments marks errors caused by the model's arguments rather than
// the tool, so callers can tell the model to fix its call.
var ErrInvalidArguments = errors.New("invalid arguments")

// ArgumentError says which argument was wrong and why.
func ArgumentError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArguments, fmt.Sprintf(format, args...))
}

// Decode unmarshals a tool call's arguments into v, reporting problems as
// argument errors.
func Decode(args json.RawMessage, v any) error {
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	if err := json.Unmarshal(args, v); err != nil {
		return ArgumentError("arguments must be a JSON object matching the tool's parameters: %v", err)
	}
	return nil
}

// Truncate limits a tool result to max bytes (on a UTF-8 boundary), saying how
// much was cut so the model knows the result is partial.
func Truncate(s string, max int) string {
	if max <= 0 || len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("\n[truncated: %d of %d bytes shown]", cut, len(s))
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// SafeName turns a name into one every vendor accepts for tools:
// ^[a-zA-Z0-9_-]{1,64}$.
func SafeName(name string) string {
	s := strings.Trim(unsafeName.ReplaceAllString(name, "_"), "_")
	if s == "" {
		s = "tool"
	}
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// Head returns the first n characters (runes, not bytes) of s, for quoting the
// start of a response in an error.
func Head(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
