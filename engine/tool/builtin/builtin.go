// Package builtin implements the tools agents may list by name without a Tool
// document: current_time, calculator, http_fetch and knowledge_search. A Tool
// document whose type is a builtin's name configures an instance of it (such
// as http_fetch with allowed_hosts).
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

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// Modules returns the builtin tools as registry modules, in the order they are
// documented. This list is the one place a new builtin is registered: its
// file, its test and a line here.
func Modules(o Options) []tool.Module {
	return []tool.Module{
		currentTimeModule(o),
		calculatorModule(),
		httpFetchModule(o),
		knowledgeSearchModule(o),
	}
}

// Options are what the builtin tools share across agents. The zero value is
// usable.
type Options struct {
	// HTTPFetch are http_fetch's settings when an agent lists it by name; a
	// Tool document of type http_fetch overrides them field by field.
	HTTPFetch HTTPFetchOptions
	Knowledge KnowledgeSearcher // nil: knowledge_search says nothing is indexed
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

// KnowledgeSearcher is what knowledge_search needs from the knowledge
// subsystem (kb.Service implements it). It is declared here, by its consumer,
// so neither package imports the other.
type KnowledgeSearcher interface {
	// Search returns at most topK hits, best first, from the named knowledge
	// bases; mode "" uses each base's own. filters restrict hits by document
	// metadata.
	Search(ctx context.Context, knowledge []string, query, mode string, topK int, filters knowledge.Filters) ([]knowledge.Hit, error)
}

// New returns the builtin tool called name with its defaults, or an error for
// unknown names.
//
// knowledge_search returned by New is bound to no knowledge base and reports
// that when called; engines bind an agent's knowledge bases through the
// module's Deps.
func New(name string, opts Options) (tool.Tool, error) {
	var names []string
	for _, m := range Modules(opts) {
		if m.Type == name {
			return m.New(context.Background(), &spec.Tool{Meta: spec.Meta{Name: name}, Type: name}, tool.Deps{})
		}
		names = append(names, m.Type)
	}
	return nil, fmt.Errorf("unknown builtin tool %q: builtin tools are %s", name, strings.Join(names, ", "))
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
