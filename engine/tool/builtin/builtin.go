// Package builtin implements the tools agents may list by name without a Tool
// document: current_time, calculator, http_fetch and knowledge_search.
//
// They exist because models are unreliable at exactly these things — knowing
// the date, doing arithmetic, reading a web page, recalling a team's documents
// — and every deployment wants them without writing YAML. Each is safe for
// concurrent use and keeps no per-call state.
package builtin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/tool"
)

// Names lists the builtin tools, in the order they are documented.
var Names = []string{"current_time", "calculator", "http_fetch", "knowledge_search"}

// Options configure the builtin tools. The zero value is usable.
type Options struct {
	HTTPFetch HTTPFetchOptions  // for http_fetch
	Knowledge KnowledgeSearcher // may be nil until the knowledge subsystem exists
	Now       func() time.Time  // nil = time.Now; tests fix the clock
}

// HTTPFetchOptions configure http_fetch.
type HTTPFetchOptions struct {
	// AllowedHosts, when set, are the only hosts http_fetch may reach; listed
	// hosts may also be loopback or private (see egress.Policy).
	AllowedHosts []string
	Timeout      time.Duration // for one fetch, redirects and body included; default 15s
	MaxBytes     int64         // of response body read; default 2 MiB
}

// KnowledgeSearcher is implemented by the knowledge subsystem. It is declared
// here, by its consumer, so this package does not depend on how knowledge is
// stored or embedded.
type KnowledgeSearcher interface {
	// Search returns at most topK hits, best first, from the named knowledge
	// bases. filters restrict hits by document metadata.
	Search(ctx context.Context, knowledge []string, query string, topK int, filters map[string]any) ([]Hit, error)
}

// Hit is one search result.
type Hit struct {
	DocumentID   string
	DocumentName string
	Text         string
	Score        float64 // higher is more relevant
	Metadata     map[string]any
}

// New returns the builtin tool called name, or an error for unknown names.
//
// knowledge_search returned by New is bound to no knowledge base and reports
// that when called; engines bind an agent's knowledge bases with
// NewKnowledgeSearch.
func New(name string, opts Options) (tool.Tool, error) {
	switch name {
	case "current_time":
		return newCurrentTime(opts.Now), nil
	case "calculator":
		return calculator{}, nil
	case "http_fetch":
		return newHTTPFetch(opts.HTTPFetch), nil
	case "knowledge_search":
		return NewKnowledgeSearch(opts.Knowledge, nil, 0), nil
	}
	return nil, fmt.Errorf("unknown builtin tool %q: builtin tools are %s", name, strings.Join(Names, ", "))
}

// object builds a JSON Schema of type object, the shape every vendor accepts
// for tool parameters.
func object(properties map[string]any, required ...string) map[string]any {
	s := map[string]any{
		"type":                 "object",
		"properties":           properties,
		"additionalProperties": false,
	}
	if required == nil {
		required = []string{}
	}
	s["required"] = required
	return s
}
