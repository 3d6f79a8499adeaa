package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/tool"
)

func TestNew(t *testing.T) {
	for _, m := range Modules(Options{}) {
		name := m.Type
		require.True(t, m.Builtin, name)
		tl, err := New(name, Options{})
		require.NoError(t, err, name)
		def := tl.Def()
		require.Equal(t, name, def.Name)
		require.Equal(t, name, tool.SafeName(def.Name))
		require.NotEmpty(t, def.Description)
		require.Equal(t, "object", def.Parameters["type"])
		require.Contains(t, def.Parameters, "required")

		// Each parameters schema is a valid JSON Schema.
		raw, err := json.Marshal(def.Parameters)
		require.NoError(t, err)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		require.NoError(t, err)
		c := jsonschema.NewCompiler()
		require.NoError(t, c.AddResource("test://"+name+".json", doc))
		_, err = c.Compile("test://" + name + ".json")
		require.NoError(t, err, name)
	}
	_, err := New("shell", Options{})
	require.ErrorContains(t, err, `unknown builtin tool "shell": builtin tools are current_time, calculator, http_fetch, knowledge_search`)
}

func TestCurrentTime(t *testing.T) {
	fixed := time.Date(2024, 3, 10, 18, 30, 0, 0, time.UTC) // a Sunday
	tl, err := New("current_time", Options{Now: func() time.Time { return fixed }})
	require.NoError(t, err)

	got, err := tl.Call(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, "2024-03-10T18:30:00Z\nWeekday: Sunday\nTime zone: UTC (UTC, UTC+00:00)", got)

	got, err = tl.Call(context.Background(), json.RawMessage(`{"timezone": "America/New_York"}`))
	require.NoError(t, err)
	require.Equal(t, "2024-03-10T14:30:00-04:00\nWeekday: Sunday\nTime zone: America/New_York (EDT, UTC-04:00)", got)

	got, err = tl.Call(context.Background(), json.RawMessage(`{"timezone": "Asia/Kolkata"}`))
	require.NoError(t, err)
	require.Equal(t, "2024-03-11T00:00:00+05:30\nWeekday: Monday\nTime zone: Asia/Kolkata (IST, UTC+05:30)", got)

	for _, zone := range []string{"Mars/Olympus_Mons", "Local", "../../etc/passwd"} {
		_, err = tl.Call(context.Background(), args(t, map[string]any{"timezone": zone}))
		require.ErrorIs(t, err, tool.ErrInvalidArguments, zone)
		require.ErrorContains(t, err, `such as "Europe/Paris"`)
	}
	_, err = tl.Call(context.Background(), json.RawMessage(`{"timezone": 5}`))
	require.ErrorIs(t, err, tool.ErrInvalidArguments)
}

func TestCurrentTimeDefaultClock(t *testing.T) {
	tl, err := New("current_time", Options{})
	require.NoError(t, err)
	got, err := tl.Call(context.Background(), json.RawMessage(`{}`))
	require.NoError(t, err)
	ts, err := time.Parse(time.RFC3339, got[:len("2006-01-02T15:04:05Z")])
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), ts, time.Minute)
}

type fakeSearcher struct {
	hits []knowledge.Hit
	err  error

	gotKnowledge []string
	gotQuery     string
	gotTopK      int
	gotFilters   knowledge.Filters
}

var _ KnowledgeSearcher = (*fakeSearcher)(nil)

func (f *fakeSearcher) Search(ctx context.Context, kbs []string, query, mode string, topK int, filters knowledge.Filters) ([]knowledge.Hit, error) {
	f.gotKnowledge, f.gotQuery, f.gotTopK, f.gotFilters = kbs, query, topK, filters
	return f.hits, f.err
}

func TestKnowledgeSearch(t *testing.T) {
	s := &fakeSearcher{hits: []knowledge.Hit{
		{Chunk: knowledge.Chunk{DocumentID: "d1", Document: "handbook.pdf", Text: "  Vacation is 25 days.  "}, Score: 0.87321},
		{Chunk: knowledge.Chunk{DocumentID: "d2", Text: "Sick leave is unlimited."}, Score: 0.5},
	}}
	tl := NewKnowledgeSearch(s, []string{"hr", "policies"}, 3)
	got, err := tl.Call(context.Background(), json.RawMessage(`{"query": "vacation days", "filters": {"lang": "en"}}`))
	require.NoError(t, err)
	require.Equal(t, `2 result(s) for "vacation days":

1. handbook.pdf (score 0.873)
Vacation is 25 days.

2. d2 (score 0.500)
Sick leave is unlimited.`, got)
	require.Equal(t, []string{"hr", "policies"}, s.gotKnowledge)
	require.Equal(t, "vacation days", s.gotQuery)
	require.Equal(t, 3, s.gotTopK)
	require.Equal(t, knowledge.Filters{"lang": "en"}, s.gotFilters)

	_, err = tl.Call(context.Background(), json.RawMessage(`{"query": "x", "top_k": 1000}`))
	require.NoError(t, err)
	require.Equal(t, maxTopK, s.gotTopK)

	_, err = tl.Call(context.Background(), json.RawMessage(`{"query": "x", "top_k": 0}`))
	require.ErrorIs(t, err, tool.ErrInvalidArguments)
	_, err = tl.Call(context.Background(), json.RawMessage(`{"query": "  "}`))
	require.ErrorIs(t, err, tool.ErrInvalidArguments)

	s.hits = nil
	got, err = tl.Call(context.Background(), json.RawMessage(`{"query": "pets"}`))
	require.NoError(t, err)
	require.Equal(t, `No results for "pets" in the knowledge bases (hr, policies).`, got)

	s.err = errors.New("index unavailable")
	_, err = tl.Call(context.Background(), json.RawMessage(`{"query": "pets"}`))
	require.EqualError(t, err, "knowledge search failed: index unavailable")
}

func TestKnowledgeSearchUnavailable(t *testing.T) {
	const want = "knowledge search is not available: no knowledge base is configured for this agent"
	tl, err := New("knowledge_search", Options{})
	require.NoError(t, err)
	_, err = tl.Call(context.Background(), json.RawMessage(`{"query": "anything"}`))
	require.EqualError(t, err, want)

	_, err = NewKnowledgeSearch(nil, []string{"hr"}, 0).Call(context.Background(), json.RawMessage(`{"query": "anything"}`))
	require.EqualError(t, err, "knowledge search is not available: this server is not indexing documents, so there is nothing to search")

	// A searcher but no knowledge bases bound to the agent.
	_, err = NewKnowledgeSearch(&fakeSearcher{}, nil, 0).Call(context.Background(), json.RawMessage(`{"query": "anything"}`))
	require.EqualError(t, err, want)
}

func TestKnowledgeSearchCopiesKnowledge(t *testing.T) {
	kb := []string{"a"}
	s := &fakeSearcher{}
	tl := NewKnowledgeSearch(s, kb, 0)
	kb[0] = "b"
	_, err := tl.Call(context.Background(), json.RawMessage(`{"query": "q"}`))
	require.NoError(t, err)
	require.True(t, slices.Equal([]string{"a"}, s.gotKnowledge))
	require.Equal(t, DefaultTopK, s.gotTopK)
}
