package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// knowledge_search limits.
const (
	DefaultTopK = 5
	maxTopK     = 50
)

// errNoKnowledge and errNoSearcher are returned by knowledge_search when nothing
// can be searched: the tool says so rather than inventing results.
var (
	errNoKnowledge = errors.New("knowledge search is not available: no knowledge base is configured for this agent")
	errNoSearcher  = errors.New("knowledge search is not available: this server is not indexing documents, so there is nothing to search")
)

type knowledgeSearch struct {
	searcher    KnowledgeSearcher
	knowledge   []string
	defaultTopK int
}

var _ tool.Tool = (*knowledgeSearch)(nil)

// knowledgeSearchModule registers knowledge_search. It is built per agent: each
// instance searches the agent's own knowledge bases, with the largest top_k
// they configure as the default.
func knowledgeSearchModule(o Options) tool.Module {
	return tool.Module{Type: "knowledge_search", Builtin: true, PerAgent: true,
		New: func(_ context.Context, _ *spec.Tool, d tool.Deps) (tool.Tool, error) {
			topK := spec.DefaultTopK
			names := make([]string, 0, len(d.Knowledge))
			for _, k := range d.Knowledge {
				names = append(names, k.Name)
				topK = max(topK, k.Search.TopK)
			}
			return NewKnowledgeSearch(o.Knowledge, names, topK), nil
		}}
}

// NewKnowledgeSearch returns knowledge_search bound to the agent's knowledge
// bases. defaultTopK applies when the model gives no top_k (0 means
// DefaultTopK). With a nil searcher or no knowledge bases the tool reports that
// knowledge search is not available.
func NewKnowledgeSearch(s KnowledgeSearcher, knowledge []string, defaultTopK int) tool.Tool {
	if defaultTopK <= 0 {
		defaultTopK = DefaultTopK
	}
	return &knowledgeSearch{searcher: s, knowledge: slices.Clone(knowledge), defaultTopK: min(defaultTopK, maxTopK)}
}

var knowledgeSearchDef = model.ToolDef{
	Name: "knowledge_search",
	Description: "Searches the documents in this agent's knowledge bases and returns the most relevant passages, " +
		"best first, with their document names and relevance scores. Use it before answering questions the documents may cover, " +
		"and cite the document names you rely on.",
	Parameters: object(map[string]any{
		"query": map[string]any{
			"type":        "string",
			"description": "What to look for, in natural language or keywords.",
		},
		"top_k": map[string]any{
			"type":        "integer",
			"minimum":     1,
			"maximum":     maxTopK,
			"description": "How many passages to return (default set by the agent, usually 5).",
		},
		"filters": map[string]any{
			"type":        "object",
			"description": "Only return passages whose document metadata has these values, such as {\"language\": \"en\"}.",
		},
	}, "query"),
}

func (*knowledgeSearch) Def() model.ToolDef { return knowledgeSearchDef }

func (k *knowledgeSearch) Call(ctx context.Context, args json.RawMessage) (string, error) {
	// First, so a model stops retrying a search that cannot succeed.
	if len(k.knowledge) == 0 {
		return "", errNoKnowledge
	}
	if k.searcher == nil {
		return "", errNoSearcher
	}
	var a struct {
		Query   string         `json:"query"`
		TopK    *int           `json:"top_k"`
		Filters map[string]any `json:"filters"`
	}
	if err := tool.Decode(args, &a); err != nil {
		return "", err
	}
	query := strings.TrimSpace(a.Query)
	if query == "" {
		return "", tool.ArgumentError("missing required argument \"query\"")
	}
	topK := k.defaultTopK
	if a.TopK != nil {
		if *a.TopK < 1 {
			return "", tool.ArgumentError("top_k must be at least 1, got %d", *a.TopK)
		}
		topK = min(*a.TopK, maxTopK)
	}
	searchStart := time.Now()
	hits, err := k.searcher.Search(ctx, k.knowledge, query, "", topK, knowledge.Filters(a.Filters))
	took := time.Since(searchStart)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("knowledge search failed: %w", err)
	}
	if len(hits) > topK {
		hits = hits[:topK]
	}
	if len(hits) == 0 {
		return fmt.Sprintf("No results for %q in the knowledge bases (%s).", query, strings.Join(k.knowledge, ", ")), nil
	}
	refs := make([]event.Reference, len(hits))
	for i, h := range hits {
		// The query and the text go along so clients can show what was
		// looked for and what was found (AgentOS's extra_data.references);
		// Chunk counts from 1, as Agno numbers chunks.
		refs[i] = event.Reference{DocumentID: h.DocumentID, DocumentName: h.Document, Score: h.Score,
			ChunkID: h.ID, KnowledgeID: h.KnowledgeID, Heading: h.Heading, Page: h.Page,
			Query: query, Content: h.Text, Chunk: h.Index + 1, SearchTime: took}
		if refs[i].ChunkID == "" {
			refs[i].ChunkID = fmt.Sprintf("%s#%d", h.DocumentID, i)
		}
	}
	tool.AddReferences(ctx, refs...)
	var b strings.Builder
	fmt.Fprintf(&b, "%d result(s) for %q:\n", len(hits), query)
	for i, h := range hits {
		name := h.Document
		if name == "" {
			name = h.DocumentID
		}
		if name == "" {
			name = "(unnamed document)"
		}
		fmt.Fprintf(&b, "\n%d. %s (score %.3f)\n%s\n", i+1, name, h.Score, strings.TrimSpace(h.Text))
	}
	return strings.TrimRight(b.String(), "\n"), nil
}
