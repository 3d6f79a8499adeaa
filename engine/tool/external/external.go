// Package external provides tools of type external: the client runs them.
// A call to one pauses the run (engine/approval flags every call), and the
// client continues it with the call's result; the tool itself is only its
// description to the model.
package external

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// Tool is an external tool's description.
type Tool struct{ def model.ToolDef }

var _ tool.Tool = (*Tool)(nil)

// Def implements tool.Tool.
func (t *Tool) Def() model.ToolDef { return t.def }

// ErrClientSide is the result of calling an external tool directly, which
// the run never does: its calls pause for the client's result.
var ErrClientSide = errors.New("this tool runs on the client: its result comes with the run's continue request")

// Call implements tool.Tool.
func (t *Tool) Call(context.Context, json.RawMessage) (string, error) { return "", ErrClientSide }

// Module builds external tools from their documents.
func Module() tool.Module {
	return tool.Module{Type: spec.ToolExternal, New: func(_ context.Context, s *spec.Tool, _ tool.Deps) (tool.Tool, error) {
		params := map[string]any(s.Parameters)
		if params == nil {
			params = map[string]any{"type": "object", "properties": map[string]any{}}
		}
		return &Tool{def: model.ToolDef{Name: s.Name, Description: s.Description, Parameters: params}}, nil
	}}
}
