package spec_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

// TestEmbedderForms: each way of writing an embedder decodes to the
// endpoint it means, and a named Model is written inline by WithModel.
func TestEmbedderForms(t *testing.T) {
	t.Parallel()
	set := loadFile(t, "testdata/good/embedders.yaml")
	tests := []struct {
		knowledge string
		local     bool
		modelName string
		want      spec.Embedder // after WithModel for a named Model
		shown     string
	}{
		{knowledge: "default-local", local: true, want: spec.Embedder{Model: "local"}, shown: "local"},
		{knowledge: "short-openai", want: spec.Embedder{Model: "openai/text-embedding-3-large"}, shown: "openai/text-embedding-3-large"},
		{knowledge: "short-ollama", want: spec.Embedder{Model: "ollama/nomic-embed-text"}, shown: "ollama/nomic-embed-text"},
		{knowledge: "named", modelName: "vectors", shown: "vectors", want: spec.Embedder{Provider: "openai", Model: "text-embedding-3-small",
			BaseURL: "https://gateway.example.com/v1", APIKey: "none", Headers: map[string]string{"X-Tenant": "acme"}}},
		{knowledge: "named-with-dimensions", modelName: "vectors", shown: "vectors", want: spec.Embedder{Provider: "openai", Model: "text-embedding-3-small",
			BaseURL: "https://gateway.example.com/v1", APIKey: "none", Headers: map[string]string{"X-Tenant": "acme"}, Dimensions: 512, BatchSize: 64, Concurrency: 2}},
		{knowledge: "named-ollama", modelName: "ollama-box", shown: "ollama-box", want: spec.Embedder{Provider: "ollama", Model: "nomic-embed-text", BaseURL: "http://ollama:11434/v1"}},
		{knowledge: "inline-tei", shown: "openai/BAAI/bge-small-en-v1.5", want: spec.Embedder{Provider: "openai", Model: "BAAI/bge-small-en-v1.5",
			BaseURL: "http://tei:8080/v1", APIKey: "none", Headers: map[string]string{"X-Route": "embeddings"}, Dimensions: 384}},
	}
	keys := map[string]string{}
	for _, tc := range tests {
		t.Run(tc.knowledge, func(t *testing.T) {
			k := set.Knowledge(tc.knowledge)
			require.NotNil(t, k)
			e := k.Embedder
			require.Equal(t, tc.local, e.Local())
			require.Equal(t, tc.modelName, e.ModelName())
			if tc.modelName != "" {
				e = e.WithModel(set.Model(tc.modelName))
			}
			require.Empty(t, e.ModelName(), "resolved")
			require.Equal(t, tc.shown, e.String())
			got := e
			// Only the exported fields are compared.
			require.Equal(t, tc.want, spec.Embedder{Model: got.Model, Provider: got.Provider, BaseURL: got.BaseURL, APIKey: got.APIKey,
				Headers: got.Headers, Dimensions: got.Dimensions, BatchSize: got.BatchSize, Concurrency: got.Concurrency})
			require.NotContains(t, e.Key(), "none", "the key is hashed")
			keys[tc.knowledge] = e.Key()
		})
	}
	require.NotEqual(t, keys["named"], keys["named-with-dimensions"], "dimensions change what is embedded")
}
