package engine

import (
	"context"
	"errors"

	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/engine/tool/a2a"
	"github.com/troupehq/troupe/engine/tool/builtin"
	"github.com/troupehq/troupe/engine/tool/external"
	"github.com/troupehq/troupe/engine/tool/httptool"
	"github.com/troupehq/troupe/engine/tool/mcp"
	"github.com/troupehq/troupe/spec"
)

// ToolOptions are the shared services the default tool modules use.
type ToolOptions struct {
	// MCP pools MCP sessions across reloads; nil leaves the mcp type
	// unregistered, so MCP tools are reported as unavailable.
	MCP *mcp.Pool
	// Builtin configures the builtin tools: the knowledge searcher behind
	// knowledge_search, http_fetch's defaults, the clock.
	Builtin builtin.Options
}

// DefaultTools returns the registry of every tool type Troupe provides: the
// http and mcp document types and the builtins. cmd/troupe calls it with its
// services; tests call it with fakes, or build a tool.Registry of their own.
func DefaultTools(o ToolOptions) *tool.Registry {
	mods := append([]tool.Module{httptool.Module(), external.Module(), a2a.Module()}, builtin.Modules(o.Builtin)...)
	if o.MCP != nil {
		mods = append(mods, mcp.Module(o.MCP))
	} else {
		mods = append(mods, tool.Module{Type: spec.ToolMCP,
			NewToolset: func(_ context.Context, s *spec.Tool, _ tool.Deps) (tool.Toolset, error) {
				return nil, errors.New("MCP tools are not available in this process")
			}})
	}
	return tool.NewRegistry(mods...)
}
