package main

import (
	"context"
	"log/slog"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/knowledge/milvus"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/anthropic"
	"github.com/troupehq/troupe/engine/model/echo"
	"github.com/troupehq/troupe/engine/model/openai"
	"github.com/troupehq/troupe/engine/tool/builtin"
	"github.com/troupehq/troupe/engine/tool/mcp"
	"github.com/troupehq/troupe/engine/workflow"
	"github.com/troupehq/troupe/spec"
)

// newModels registers every model vendor Troupe speaks. The registry is built
// here, explicitly, so tests can build their own with fakes.
func newModels() *model.Registry {
	r := model.NewRegistry()
	r.Register("openai", func(c model.Config) (model.Provider, error) {
		return openai.New(openai.Options{Name: "openai", BaseURL: c.BaseURL, APIKey: c.APIKey, Headers: c.Headers}), nil
	})
	r.Register("ollama", func(c model.Config) (model.Provider, error) {
		base := c.BaseURL
		if base == "" {
			base = openai.OllamaBaseURL
		}
		return openai.New(openai.Options{Name: "ollama", BaseURL: base, APIKey: c.APIKey, Headers: c.Headers}), nil
	})
	r.Register("anthropic", func(c model.Config) (model.Provider, error) {
		return anthropic.New(anthropic.Options{BaseURL: c.BaseURL, APIKey: c.APIKey, Headers: c.Headers}), nil
	})
	r.Register(echo.Name, echo.New)
	return r
}

// newMilvus opens a Milvus-backed knowledge store for a knowledge base.
func newMilvus(ctx context.Context, k *spec.Knowledge, dimension int) (knowledge.VectorStore, error) {
	return milvus.New(ctx, milvus.Options{Address: k.Store.Address, Collection: k.Store.Collection, Dimension: dimension})
}

// builtinTools are the builtin tools the server provides, for the spec tools
// (check, schema), which run nothing: the list does not depend on options.
func builtinTools() []spec.BuiltinTool {
	return engine.DefaultTools(engine.ToolOptions{}).Builtins()
}

// The knowledge service is what knowledge_search searches; the interface is
// declared by the tool, so neither package imports the other and the two meet
// here.
var _ builtin.KnowledgeSearcher = (*kb.Service)(nil)

// newRuntime builds what agents need to run, with the tool registry built
// here, explicitly: the builtins search kbs. The caller closes the returned
// MCP pool after the runtime's last use.
func newRuntime(getenv env, logger *slog.Logger, kbs *kb.Service) (*engine.Runtime, *mcp.Pool) {
	pool := mcp.NewPool(mcp.Options{Logger: logger.With("component", "mcp"), ClientName: "troupe"})
	return &engine.Runtime{
		Models: newModels(),
		Tools:  engine.DefaultTools(engine.ToolOptions{MCP: pool, Builtin: builtin.Options{Knowledge: kbs}}),
		Env:    spec.Env(getenv),
		Logger: logger.With("component", "model"),
		// Without a store (troupe run) workflow steps are checkpointed in
		// memory; serve replaces this with the database's checkpoints.
		Workflows: func(w *engine.Workflow) agent.Runner { return workflow.New(w, workflow.Options{}) },
		// Likewise budgets count in memory; serve counts them in the
		// database, shared by every replica.
		Budgets: budget.NewMemory(),
	}, pool
}
