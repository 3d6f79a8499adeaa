package kb

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/spec"
)

// newEmbedder builds the embedder a knowledge base's spec names. A Model
// document the spec names must already be written inline
// (spec.Embedder.WithModel; the engine's snapshot does it), so that a change
// to the Model reaches the base.
//
// Like the chat providers, the embedder dials the endpoint the operator
// configured with the vendors' client: the egress guard is for URLs a model
// chooses, not for configured endpoints (a local Ollama or vLLM is the point).
func (s *Service) newEmbedder(k *spec.Knowledge) (knowledge.Embedder, error) {
	e := k.Embedder
	if e.Local() {
		return embed.NewLocal(embed.LocalOptions{Dimension: LocalDimension}), nil
	}
	if name := e.ModelName(); name != "" {
		return nil, fmt.Errorf("embedder %s names a Model document that was not resolved: load the knowledge base through a spec folder that defines it", name)
	}
	if e.Provider == "" {
		// The short forms: openai/<model>, ollama/<model>.
		provider, modelName, _ := spec.SplitModelRef(e.Model)
		e.Provider, e.Model = provider, modelName
	}
	o := embed.OpenAIOptions{Model: e.Model, BaseURL: e.BaseURL, APIKey: e.APIKey, Headers: e.Headers,
		Dimension: e.Dimensions, SendDimension: e.Dimensions > 0, BatchSize: e.BatchSize, Concurrency: e.Concurrency}
	switch e.Provider {
	case "ollama":
		o.Wire = embed.WireOllama
		if o.BaseURL == "" {
			o.BaseURL = ollamaHost(s.env("OLLAMA_HOST"))
		}
	case "openai":
		o.Wire = embed.WireOpenAI
		if o.BaseURL == "" {
			o.BaseURL = s.env("OPENAI_BASE_URL")
		}
		if o.APIKey == "" {
			o.APIKey = s.env("OPENAI_API_KEY")
		}
		// OpenAI itself needs a key; a server of one's own may not.
		if o.APIKey == "" && o.BaseURL == "" && s.opts.Env != nil {
			return nil, fmt.Errorf("embedder %s needs an API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for another OpenAI-compatible server", k.Embedder.String())
		}
	default:
		return nil, fmt.Errorf("embedder %s: provider %q cannot embed: use openai or ollama", k.Embedder.String(), e.Provider)
	}
	return embed.NewOpenAI(o), nil
}

// env reads a variable of the service's environment; "" without one.
func (s *Service) env(name string) string {
	if s.opts.Env == nil {
		return ""
	}
	v, _ := s.opts.Env(name)
	return v
}

// ollamaHost turns OLLAMA_HOST into a base URL the way Ollama's own client
// does: the scheme defaults to http and the port to 11434; "" is the default
// host.
func ollamaHost(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return embed.DefaultOllamaHost
	}
	scheme := "http"
	if s, rest, ok := strings.Cut(v, "://"); ok {
		scheme, v = s, rest
	}
	host, path, _ := strings.Cut(v, "/")
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := "11434"
		if scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	u := url.URL{Scheme: scheme, Host: host}
	if path != "" {
		u.Path = "/" + strings.TrimRight(path, "/")
	}
	return u.String()
}
