package knowledge_test

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
)

func TestFiltersMatch(t *testing.T) {
	t.Parallel()
	md := map[string]any{"lang": "en", "year": 2024.0, "tags": []any{"a", "b"}, "obj": map[string]any{"k": 1.0}}
	for _, tt := range []struct {
		name   string
		filter knowledge.Filters
		want   bool
	}{
		{"equal string", knowledge.Filters{"lang": "en"}, true},
		{"other string", knowledge.Filters{"lang": "fr"}, false},
		{"int matches float", knowledge.Filters{"year": 2024}, true},
		{"one of", knowledge.Filters{"lang": []any{"fr", "en"}}, true},
		{"none of", knowledge.Filters{"lang": []any{"fr", "de"}}, false},
		{"missing key", knowledge.Filters{"team": "x"}, false},
		{"list value inside a list filter", knowledge.Filters{"tags": []any{[]any{"a", "b"}}}, true},
		{"object value", knowledge.Filters{"obj": []any{map[string]any{"k": 1.0}}}, true},
		{"scalar against list", knowledge.Filters{"tags": "a"}, false},
		{"all must match", knowledge.Filters{"lang": "en", "year": 1999}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.filter.Match(md))
		})
	}
}

func TestFuse(t *testing.T) {
	t.Parallel()
	hit := func(id string) knowledge.Hit { return knowledge.Hit{Chunk: knowledge.Chunk{ID: id, DocumentID: id}} }
	dense := []knowledge.Hit{hit("a"), hit("b"), hit("c")}
	sparse := []knowledge.Hit{hit("c"), hit("b"), hit("d")}
	got := knowledge.Fuse(3, dense, sparse)
	require.Len(t, got, 3)
	// c: 1/(60+3) + 1/(60+1); b: 2/(60+2); a: 1/(60+1) only.
	require.Equal(t, []string{"c", "b", "a"}, []string{got[0].ID, got[1].ID, got[2].ID})
	require.InDelta(t, 1.0/63+1.0/61, got[0].Score, 1e-12)
	require.InDelta(t, 2.0/62, got[1].Score, 1e-12)
	require.Equal(t, knowledge.DocumentID("kb", []byte("x")), knowledge.DocumentID("kb", []byte("x")))
	require.NotEqual(t, knowledge.DocumentID("kb", []byte("x")), knowledge.DocumentID("other", []byte("x")))
	require.Equal(t, "abc-00007", knowledge.ChunkID("abc", 7))
}

// TestFiltersValidate checks which filters searches accept: those every store
// applies the same way.
func TestFiltersValidate(t *testing.T) {
	t.Parallel()
	for _, f := range []knowledge.Filters{
		nil,
		{"lang": "en"},
		{"year": 2024.0, "draft": false, "team-id_2": "x"},
		{"lang": []any{"en", "fr"}, "n": 3},
		{"lang": []any{}}, // one of nothing: matches nothing
		{strings.Repeat("k", knowledge.MaxFilterKey): 1.5},
	} {
		require.NoError(t, f.Validate(), "%v", f)
	}
	for _, f := range []knowledge.Filters{
		{"": "x"},
		{"a.b": "x"},
		{`lang"] == "en" || x["y`: "x"},
		{"é": "x"},
		{strings.Repeat("k", knowledge.MaxFilterKey+1): "x"},
		{"lang": nil},
		{"lang": []any{"en", nil}},
		{"lang": []any{[]any{"en"}}},
		{"obj": map[string]any{"k": 1.0}},
		{"n": math.NaN()},
		{"n": []any{math.Inf(1)}},
		{"tags": []string{"a"}}, // lists arrive from JSON as []any
	} {
		require.ErrorIs(t, f.Validate(), knowledge.ErrInvalidFilter, "%v", f)
	}
}
