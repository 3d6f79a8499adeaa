package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

const (
	// maxResult bounds a result held in memory; the engine applies its own,
	// usually smaller, limit before results reach a model.
	maxResult = spec.DefaultMaxResponse
	// maxErrorText bounds the server's text quoted in an error.
	maxErrorText = 4096
)

// mcpTool is one server tool, offered under a namespaced name. It calls
// through its toolset, so it keeps working across server restarts.
type mcpTool struct {
	ts     *Toolset
	remote string // the tool's name on the server
	def    model.ToolDef
}

var _ tool.Tool = (*mcpTool)(nil)

func (m *mcpTool) Def() model.ToolDef { return m.def }

func (m *mcpTool) Call(ctx context.Context, args json.RawMessage) (string, error) {
	obj, err := argumentsObject(args)
	if err != nil {
		return "", err
	}
	return m.ts.call(ctx, m.remote, obj)
}

// argumentsObject checks that args is a JSON object and returns it unchanged
// (rather than decoded and re-encoded, which would round large integers
// through float64). Empty or null arguments mean no arguments.
func argumentsObject(args json.RawMessage) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(args)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return json.RawMessage("{}"), nil
	}
	var obj map[string]json.RawMessage
	if err := tool.Decode(trimmed, &obj); err != nil {
		return nil, err
	}
	return json.RawMessage(trimmed), nil
}

// newTool adapts a server tool, namespaced by the document name.
func newTool(ts *Toolset, rt *sdkmcp.Tool) *mcpTool {
	return &mcpTool{
		ts:     ts,
		remote: rt.Name,
		def: model.ToolDef{
			Name:        toolName(ts.cfg.Name, rt.Name),
			Description: description(ts.cfg.Name, rt),
			Parameters:  parameters(rt.InputSchema),
		},
	}
}

func toolName(server, remote string) string { return tool.SafeName(server + "_" + remote) }

func description(server string, rt *sdkmcp.Tool) string {
	switch {
	case rt.Description != "":
		return rt.Description
	case rt.Title != "":
		return rt.Title
	}
	return fmt.Sprintf("Tool %s of MCP server %s.", rt.Name, server)
}

// parameters turns a server's input schema into the JSON Schema object models
// receive. The client decodes schemas as map[string]any; anything else is
// converted through JSON. A missing or unusable schema means no parameters.
func parameters(schema any) map[string]any {
	var m map[string]any
	switch s := schema.(type) {
	case nil:
	case map[string]any:
		m = s // decoded for this listing only: ours to keep
	default:
		if b, err := json.Marshal(s); err == nil {
			_ = json.Unmarshal(b, &m) // not an object: m stays nil
		}
	}
	if m == nil {
		return map[string]any{"type": "object"}
	}
	if _, ok := m["type"]; !ok {
		m["type"] = "object"
	}
	return m
}

// callResult turns a server's answer into a tool result: the text blocks,
// joined by newlines, with other blocks summarized, since models receive
// tool results as text. Structured content is used when there is no text.
// A result the server flagged as an error becomes an error with its text.
func callResult(server, name string, res *sdkmcp.CallToolResult) (string, error) {
	text := resultText(res)
	if res.IsError {
		if text == "" {
			text = "no details given"
		}
		return "", fmt.Errorf("MCP tool %q of server %q failed: %s", name, server, tool.Truncate(text, maxErrorText))
	}
	return tool.Truncate(text, maxResult), nil
}

func resultText(res *sdkmcp.CallToolResult) string {
	parts := make([]string, 0, len(res.Content))
	for _, c := range res.Content {
		parts = append(parts, contentText(c))
	}
	text := strings.Join(parts, "\n")
	if text == "" && res.StructuredContent != nil {
		if b, err := json.Marshal(res.StructuredContent); err == nil {
			text = string(b)
		}
	}
	return text
}

func contentText(c sdkmcp.Content) string {
	switch c := c.(type) {
	case *sdkmcp.TextContent:
		return c.Text
	case *sdkmcp.ImageContent:
		return fmt.Sprintf("[image: %s, %d bytes]", orUnknown(c.MIMEType), len(c.Data))
	case *sdkmcp.AudioContent:
		return fmt.Sprintf("[audio: %s, %d bytes]", orUnknown(c.MIMEType), len(c.Data))
	case *sdkmcp.ResourceLink:
		return fmt.Sprintf("[resource link: %s]", c.URI)
	case *sdkmcp.EmbeddedResource:
		r := c.Resource
		switch {
		case r == nil:
			return "[resource]"
		case r.Text != "":
			return r.Text
		}
		return fmt.Sprintf("[resource: %s, %s, %d bytes]", r.URI, orUnknown(r.MIMEType), len(r.Blob))
	case nil:
		return ""
	}
	return fmt.Sprintf("[%T content]", c)
}

func orUnknown(mime string) string {
	if mime == "" {
		return "unknown type"
	}
	return mime
}
