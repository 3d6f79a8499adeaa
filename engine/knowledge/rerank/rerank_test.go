package rerank_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge/rerank"
)

func TestRerankReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		reply  string
		want   []float64
		err    string
	}{
		{"cohere and jina", 200, `{"results":[{"index":1,"relevance_score":0.9},{"index":0,"relevance_score":0.1}]}`, []float64{0.1, 0.9}, ""},
		{"tei", 200, `[{"index":1,"score":0.7},{"index":0,"score":0.2}]`, []float64{0.2, 0.7}, ""},
		{"clamped", 200, `[{"index":0,"score":3.5},{"index":1,"score":-2}]`, []float64{1, 0}, ""},
		{"left out scores 0", 200, `{"results":[{"index":1,"relevance_score":0.4}]}`, []float64{0, 0.4}, ""},
		{"error status", 401, `{"message":"invalid api token"}`, nil, "answered 401 Unauthorized: {\"message\":\"invalid api token\"}"},
		{"not a rerank API", 200, `{"data":[]}`, nil, `the reply has no "results": is base_url the rerank API's`},
		{"index out of range", 200, `[{"index":5,"score":0.5}]`, nil, "index 5 out of range for 2 documents"},
		{"no score", 200, `[{"index":0}]`, nil, "result 0 has no score"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				require.Equal(t, "/v2/rerank", r.URL.Path)
				require.Equal(t, "Bearer k", r.Header.Get("Authorization"))
				require.Equal(t, "yes", r.Header.Get("X-Extra"))
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.reply))
			}))
			defer srv.Close()
			c := rerank.New(rerank.Options{BaseURL: srv.URL + "/v2/", Model: "m", APIKey: "k", Headers: map[string]string{"X-Extra": "yes"}})
			got, err := c.Rerank(t.Context(), "q", []string{"a", "b"})
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
