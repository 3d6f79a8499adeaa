package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Config is what a provider needs to connect: everything in a Model spec except
// per-request policy.
type Config struct {
	Provider string // openai, anthropic, ollama, echo
	BaseURL  string
	APIKey   string
	Headers  map[string]string
}

// key normalizes a config into a pool key. The API key is hashed so keys never
// sit in memory as map keys twice over.
func (c Config) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", c.Provider, c.BaseURL, c.APIKey)
	for _, k := range slices.Sorted(maps.Keys(c.Headers)) {
		fmt.Fprintf(h, "%s\x00%s\x00", k, c.Headers[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Factory builds a provider from a config.
type Factory func(Config) (Provider, error)

// Registry maps provider names to factories and pools the providers it builds by
// normalized config, so every agent that talks to the same endpoint with the
// same key shares one HTTP client across reloads. Safe for concurrent use.
type Registry struct {
	mu        sync.Mutex
	factories map[string]Factory
	pool      map[string]Provider
}

// NewRegistry returns an empty registry; cmd/troupe registers the vendors.
func NewRegistry() *Registry {
	return &Registry{factories: map[string]Factory{}, pool: map[string]Provider{}}
}

// Register adds a factory. Registering a name twice is a programming error.
func (r *Registry) Register(name string, f Factory) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[name]; dup {
		panic(fmt.Sprintf("model: provider %q registered twice", name))
	}
	r.factories[name] = f
}

// Provider returns the pooled provider for cfg, building it on first use.
func (r *Registry) Provider(cfg Config) (Provider, error) {
	k := cfg.key()
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pool[k]; ok {
		return p, nil
	}
	f, ok := r.factories[cfg.Provider]
	if !ok {
		return nil, fmt.Errorf("no model provider %q is registered (known: %v)", cfg.Provider, slices.Sorted(maps.Keys(r.factories)))
	}
	p, err := f(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating %s provider: %w", cfg.Provider, err)
	}
	r.pool[k] = p
	return p, nil
}
