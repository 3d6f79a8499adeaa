package main

import (
	"context"
	"log/slog"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/milvus"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/anthropic"
	"github.com/troupehq/troupe/engine/model/echo"
	"github.com/troupehq/troupe/engine/model/openai"
	"github.com/troupehq/troupe/engine/tool/builtin"
	"github.com/troupehq/troupe/engine/tool/mcp"
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

// newRuntime builds what agents need to run. The caller closes the MCP pool.
func newRuntime(getenv env, logger *slog.Logger) *engine.Runtime {
	return &engine.Runtime{
		Models:  newModels(),
		MCP:     mcp.NewPool(mcp.Options{Logger: logger.With("component", "mcp"), ClientName: "troupe"}),
		Builtin: builtin.Options{},
		Env:     spec.Env(getenv),
		Logger:  logger.With("component", "model"),
	}
}
