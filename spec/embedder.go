package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// LocalEmbedder is the embedder that needs no model: feature hashing.
const LocalEmbedder = "local"

// EmbedderProviders are the providers that can embed: openai is the OpenAI
// embeddings wire (POST {base_url}/embeddings), which OpenAI, Azure, vLLM,
// LM Studio, TEI and most servers speak; ollama is Ollama's native
// POST {base_url}/api/embed.
var EmbedderProviders = []string{"openai", "ollama"}

// Embedder limits.
const (
	MaxEmbedderBatchSize   = 256
	MaxEmbedderConcurrency = 64
)

// Embedder says which model turns a knowledge base's chunks into vectors.
// Written as a string it is local, provider/model, or the name of a Model
// document; written as a mapping with provider it is an inline endpoint.
type Embedder struct {
	Model       string            `yaml:"model" spec:"short" doc:"local (feature hashing, no weights; the default), provider/model (openai/text-embedding-3-small, ollama/nomic-embed-text) or the name of a Model document whose provider can embed; with provider, the vendor's model id. openai/ honours OPENAI_BASE_URL and OPENAI_API_KEY, ollama/ honours OLLAMA_HOST."`
	Provider    string            `yaml:"provider" enum:"openai,ollama" doc:"Inline embedder: openai (POST {base_url}/embeddings, any OpenAI-compatible server) or ollama (POST {base_url}/api/embed)."`
	BaseURL     string            `yaml:"base_url" doc:"Inline embedder: API base URL (default OPENAI_BASE_URL or https://api.openai.com/v1; for ollama OLLAMA_HOST or http://localhost:11434)."`
	APIKey      string            `yaml:"api_key" doc:"Inline embedder: API key; write ${VAR} so the secret stays in the environment (default OPENAI_API_KEY for openai)."`
	Headers     map[string]string `yaml:"headers" doc:"Inline embedder: extra HTTP headers sent with every request."`
	Dimensions  int               `yaml:"dimensions" doc:"Vector length: sent to the API (OpenAI text-embedding-3, vLLM and Ollama accept it) and checked against every returned vector."`
	BatchSize   int               `yaml:"batch_size" doc:"Most texts per embedding request, 1 to 256 (default 256)."`
	Concurrency int               `yaml:"concurrency" doc:"Most embedding requests in flight at once, 1 to 64 (default 4)."`

	named string // the Model document WithModel wrote inline
}

// Local reports whether the embedder is the local one.
func (e *Embedder) Local() bool { return e.Provider == "" && e.Model == LocalEmbedder }

// ModelName returns the Model document the embedder names, or "".
func (e *Embedder) ModelName() string {
	if e.Provider != "" || e.Model == LocalEmbedder {
		return ""
	}
	if _, _, inline := SplitModelRef(e.Model); inline {
		return ""
	}
	return e.Model
}

// WithModel returns the embedder with the endpoint of the Model document it
// names written inline, so that what embeds needs no other document.
func (e Embedder) WithModel(m *Model) Embedder {
	e.Provider, e.Model, e.BaseURL, e.APIKey = m.Provider, m.Model, m.BaseURL, m.APIKey
	e.Headers = m.Headers
	e.named = m.Name
	return e
}

// Key identifies what the embedder computes and where: two knowledge bases
// with one key share query embeddings, and a base whose key changed must be
// re-embedded. The API key and headers are hashed, never kept in clear.
func (e *Embedder) Key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", e.APIKey)
	for _, k := range slices.Sorted(maps.Keys(e.Headers)) {
		fmt.Fprintf(h, "%s\x00%s\x00", k, e.Headers[k])
	}
	return fmt.Sprintf("%s|%s|%s|%d|%s", e.Provider, e.Model, e.BaseURL, e.Dimensions, hex.EncodeToString(h.Sum(nil))[:16])
}

// String is how the embedder is shown: local, provider/model or the Model
// document's name.
func (e *Embedder) String() string {
	if e.named != "" {
		return e.named
	}
	if e.Provider != "" {
		return e.Provider + "/" + e.Model
	}
	return e.Model
}

func (e *Embedder) applyDefaults() {
	if e.Model == "" && e.Provider == "" {
		e.Model = LocalEmbedder
	}
}

func (v *validator) embedder(p string, e *Embedder) {
	shown := v.display(p+".model", e.Model)
	switch {
	case e.Provider != "" || v.written(p+".provider"):
		// The enum check reports an unknown provider (and leaves the field
		// empty).
		if e.Model == "" {
			v.errorf(p, "missing required field \"model\" for embedder provider %s: write the vendor's model id, such as text-embedding-3-small", e.Provider)
		}
		v.url(p+".base_url", e.BaseURL)
	case e.Model == LocalEmbedder:
		v.inlineOnly(p, e)
		if e.Dimensions != 0 || e.BatchSize != 0 || e.Concurrency != 0 {
			v.errorf(p, "the local embedder has no dimensions, batch_size or concurrency: remove them, or name an embedding API")
		}
	default:
		v.inlineOnly(p, e)
		if prov, model, ok := SplitModelRef(e.Model); ok {
			if !slices.Contains(EmbedderProviders, prov) || model == "" {
				v.errorf(p+".model", "invalid embedder %q: use local, openai/<model>, ollama/<model>, the name of a Model document, or {provider, model, base_url}", shown)
			}
			break
		}
		m, _ := v.set.lookup(KindModel, e.Model).(*Model)
		if m == nil {
			candidates := append(v.set.names(KindModel), LocalEmbedder)
			v.errorf(p+".model", "unknown embedder %q%s: write local, openai/<model>, ollama/<model> or the name of a Model document", shown, suggestionOnly(e.Model, candidates))
			break
		}
		if !slices.Contains(EmbedderProviders, m.Provider) {
			v.errorf(p+".model", "model %q has provider %s, which cannot embed: use a Model with provider %s", shown, m.Provider, strings.Join(EmbedderProviders, " or "))
		}
	}
	if e.Dimensions < 0 || (e.Dimensions == 0 && v.written(p+".dimensions")) {
		v.errorf(p+".dimensions", "dimensions must be positive, got %d", e.Dimensions)
	}
	if e.BatchSize < 0 || e.BatchSize > MaxEmbedderBatchSize {
		v.errorf(p+".batch_size", "batch_size %d is out of range: use 1 to %d", e.BatchSize, MaxEmbedderBatchSize)
	}
	if e.Concurrency < 0 || e.Concurrency > MaxEmbedderConcurrency {
		v.errorf(p+".concurrency", "concurrency %d is out of range: use 1 to %d", e.Concurrency, MaxEmbedderConcurrency)
	}
}

// inlineOnly reports endpoint fields written without provider.
func (v *validator) inlineOnly(p string, e *Embedder) {
	if e.BaseURL != "" || e.APIKey != "" || len(e.Headers) > 0 {
		v.errorf(p, "base_url, api_key and headers need provider (openai or ollama); for a Model document's endpoint, set them on the Model")
	}
}

// written reports whether the document sets the value at path.
func (v *validator) written(path string) bool {
	_, ok := v.meta.positions[path]
	return ok
}
