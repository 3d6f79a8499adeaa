package milvus

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
)

// hostile are values that would break out of a naively quoted literal.
var hostile = []string{
	``,
	`plain`,
	`"`,
	`\`,
	`\\`,
	`\"`,
	`"\`,
	`en" || knowledge_id != "`,
	`fr") || (metadata["lang"] == "en`,
	`\" || true || \"`,
	`it's`,
	`\'`,
	`'"'`,
	"line\nbreak\r\n",
	"tab\tand\x00nul\x1fand\x7fdel",
	"unicode ✓ ünïcödé 日本語 🚀",
	"invalid \xff\xfe utf8",
	"\u2028\u2029",
	`\x41\u0041\101`,
	`]] ) ( [[ == && ||`,
}

func TestQuoteRoundTrips(t *testing.T) {
	for _, s := range hostile {
		q := quote(s)
		assert.NotContains(t, q, "\n", "raw line break in %q", q)
		assert.NotContains(t, q, "\r", "raw carriage return in %q", q)
		toks, err := lexExpr(q)
		require.NoError(t, err, "quote(%q) = %s", s, q)
		require.Len(t, toks, 2, "quote(%q) = %s lexes as more than one token", s, q)
		assert.Equal(t, tokString, toks[0].kind)
		assert.Equal(t, strings.ToValidUTF8(s, "\uFFFD"), toks[0].str, "quote(%q) = %s", s, q)
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks, err := lexExpr(quote(s))
		if err != nil || len(toks) != 2 || toks[0].kind != tokString {
			t.Fatalf("quote(%q) = %s does not lex as one string: %v %v", s, quote(s), toks, err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); toks[0].str != want {
			t.Fatalf("quote(%q) decodes to %q", s, toks[0].str)
		}
	})
}

func TestValidKey(t *testing.T) {
	for _, k := range []string{"lang", "Lang_2", "x-y", "_", "-", "0"} {
		assert.NoError(t, knowledge.ValidFilterKey(k), k)
	}
	for _, k := range []string{"", "a b", `a"b`, `a\b`, "a]", "a[", "a.b", "a'b", "é", "a\nb", `lang"] == "en" || metadata["x`, strings.Repeat("k", knowledge.MaxFilterKey+1)} {
		err := knowledge.ValidFilterKey(k)
		assert.ErrorIs(t, err, knowledge.ErrInvalidFilter, "%q", k)
	}
}

func TestLiteral(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
		kind kind
	}{
		{"en", `"en"`, kindString},
		{true, "true", kindBool},
		{false, "false", kindBool},
		{2024, "2024", kindInt},
		{int64(-7), "-7", kindInt},
		{uint8(3), "3", kindInt},
		{float64(2024), "2024", kindInt},
		{float32(1.5), "1.5", kindFloat},
		{2.25, "2.25", kindFloat},
		{-0.5, "-0.5", kindFloat},
		{1e300, "1e+300", kindFloat},
		{float64(1 << 60), "1.152921504606847e+18", kindFloat},
		{json.Number("42"), "42", kindInt},
		{json.Number("4.5"), "4.5", kindFloat},
	} {
		got, k, err := literal(tc.v)
		require.NoError(t, err, "%v", tc.v)
		assert.Equal(t, tc.want, got, "%#v", tc.v)
		assert.Equal(t, tc.kind, k, "%#v", tc.v)
	}
	for _, v := range []any{nil, map[string]any{}, struct{}{}, []byte("x"), uint64(1 << 63), json.Number("x")} {
		_, _, err := literal(v)
		assert.ErrorIs(t, err, knowledge.ErrInvalidFilter, "%#v", v)
	}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, _, err := literal(v)
		assert.ErrorIs(t, err, knowledge.ErrInvalidFilter, "%v", v)
	}
}

func TestSearchExpr(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kb      string
		filters knowledge.Filters
		want    string
		none    bool
	}{
		{"no filters", "docs", nil, `knowledge_id == "docs"`, false},
		{"equality", "docs", knowledge.Filters{"lang": "en"}, `knowledge_id == "docs" && metadata["lang"] == "en"`, false},
		{"sorted keys", "docs", knowledge.Filters{"b": 1, "a": true}, `knowledge_id == "docs" && metadata["a"] == true && metadata["b"] == 1`, false},
		{"list", "docs", knowledge.Filters{"tag": []any{"a", "b", "a"}}, `knowledge_id == "docs" && metadata["tag"] in ["a", "b"]`, false},
		{"typed list", "docs", knowledge.Filters{"tag": []string{"a"}}, `knowledge_id == "docs" && metadata["tag"] in ["a"]`, false},
		{"mixed list", "docs", knowledge.Filters{"v": []any{"x", 1.0, 2.5, true, 3}}, `knowledge_id == "docs" && (metadata["v"] in ["x"] || metadata["v"] in [1, 3] || metadata["v"] in [2.5] || metadata["v"] in [true])`, false},
		{"empty list", "docs", knowledge.Filters{"tag": []any{}, "lang": "en"}, `knowledge_id == "docs" && metadata["lang"] == "en"`, true},
		{"escaped", `k"b\`, knowledge.Filters{"q": `say "hi" \o/`}, `knowledge_id == "k\"b\\" && metadata["q"] == "say \"hi\" \\o/"`, false},
		{"injection", "docs", knowledge.Filters{"lang": `en" || knowledge_id != "`}, `knowledge_id == "docs" && metadata["lang"] == "en\" || knowledge_id != \""`, false},
		{"control", "docs", knowledge.Filters{"q": "a\nb\x00"}, `knowledge_id == "docs" && metadata["q"] == "a\nb\u0000"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, none, err := searchExpr(tc.kb, tc.filters)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.none, none)
		})
	}
	for _, f := range []knowledge.Filters{
		{`lang"] == "en" || metadata["x`: "y"},
		{"a b": 1},
		{"": 1},
		{"ok": map[string]any{"nested": 1}},
		{"ok": []any{[]any{1}}},
		{"ok": nil},
		{"ok": []any{nil}},
		{"ok": math.NaN()},
	} {
		_, _, err := searchExpr("docs", f)
		assert.ErrorIs(t, err, knowledge.ErrInvalidFilter, "%v", f)
	}
	assert.Equal(t, `document_id == "d\"\\"`, documentExpr(`d"\`))
}

// TestSearchExprParses checks that every expression built from hostile values
// parses (with the fake's strict parser) into exactly the intended clauses,
// each holding the original value.
func TestSearchExprParses(t *testing.T) {
	c := exprCollection()
	for _, v := range hostile {
		f := knowledge.Filters{"k": v, "l": []any{v, "other"}}
		expr, _, err := searchExpr(v+"kb", f)
		require.NoError(t, err)
		node, err := parseExpr(expr, c)
		require.NoError(t, err, expr)
		and, ok := node.(andNode)
		require.True(t, ok, "%s parsed as %T", expr, node)
		require.Len(t, and, 3, expr)
		valid := strings.ToValidUTF8(v, "\uFFFD")
		assert.Equal(t, &matchNode{field: fieldKnowledge, values: []any{valid + "kb"}}, and[0])
		assert.Equal(t, &matchNode{field: fieldMetadata, key: "k", isJSON: true, values: []any{valid}}, and[1])
		assert.Equal(t, &matchNode{field: fieldMetadata, key: "l", isJSON: true, values: []any{valid, "other"}}, and[2])
	}
}

func FuzzSearchExpr(f *testing.F) {
	for _, s := range hostile {
		f.Add("key", s)
	}
	f.Add(`a"b`, "x")
	f.Add("a]", "x")
	c := exprCollection()
	f.Fuzz(func(t *testing.T, key, value string) {
		expr, _, err := searchExpr("kb", knowledge.Filters{key: value})
		if err != nil {
			if !errors.Is(err, knowledge.ErrInvalidFilter) || knowledge.ValidFilterKey(key) == nil {
				t.Fatalf("unexpected error for %q: %v", key, err)
			}
			return
		}
		node, err := parseExpr(expr, c)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		and, ok := node.(andNode)
		if !ok || len(and) != 2 {
			t.Fatalf("%s parsed as %#v", expr, node)
		}
		m := and[1].(*matchNode)
		if m.key != key || len(m.values) != 1 || m.values[0] != strings.ToValidUTF8(value, "\uFFFD") {
			t.Fatalf("%s parsed as %#v", expr, m)
		}
	})
}

func TestTruncateUTF8(t *testing.T) {
	assert.Equal(t, "abc", truncateUTF8("abc", 5))
	assert.Equal(t, "ab", truncateUTF8("abc", 2))
	assert.Equal(t, "é", truncateUTF8("éé", 3))
	assert.Equal(t, "", truncateUTF8("é", 1))
	s := truncateUTF8(strings.Repeat("日", 30000), maxTextBytes)
	assert.LessOrEqual(t, len(s), maxTextBytes)
	assert.True(t, utf8.ValidString(s))
	assert.Equal(t, "a\uFFFDb", truncateUTF8("a\xffb", 10))
}

func TestMetadataRoundTrip(t *testing.T) {
	for _, c := range []knowledge.Chunk{
		{ID: "1", Document: "Doc", Index: 3, Page: 2, Heading: "A > B", Metadata: map[string]any{"lang": "en", "n": 1.5}},
		{ID: "2", Document: "Doc", Index: 4, Metadata: map[string]any{"page": "cover", "index": "user", "_x": true}},
		{ID: "3"},
	} {
		raw, err := encodeMetadata(&c)
		require.NoError(t, err)
		var top map[string]any
		require.NoError(t, json.Unmarshal(raw, &top))
		for _, k := range chunkFields {
			assert.Contains(t, top, k, "filters can use %s", k)
		}
		got := knowledge.Chunk{ID: c.ID}
		require.NoError(t, decodeMetadata(raw, &got))
		assert.Equal(t, c, got)
	}
	_, err := encodeMetadata(&knowledge.Chunk{ID: "x", Metadata: map[string]any{"f": func() {}}})
	assert.Error(t, err)
}

func exprCollection() *fakeCollection {
	f := &fakeMilvus{collections: map[string]*fakeCollection{}}
	st, _ := f.CreateCollection(context.Background(), createRequest("c", 4))
	if st.GetErrorCode() != 0 {
		panic(st.GetReason())
	}
	return f.collections["c"]
}
