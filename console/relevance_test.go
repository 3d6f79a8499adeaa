package console_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKnowledgeSearchMinScore checks POST /knowledge/search: scores are
// within [0, 1] in every mode, min_score drops exactly the hits below it,
// and an out-of-range min_score is refused.
func TestKnowledgeSearchMinScore(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	for _, text := range []string{
		"Rerankers reorder search hits by relevance to the query.",
		"A reranker model scores every passage against the question.",
		"Invoices are sent by email at the start of each month.",
		"Search hits below the minimum score are dropped.",
	} {
		status, out := upload(t, ts, "", map[string]string{"text_content": text}, "")
		require.Equal(t, http.StatusAccepted, status, out)
		waitCompleted(t, ts, out["id"].(string))
	}
	find := func(t *testing.T, mode string, minScore any) []map[string]any {
		t.Helper()
		req := map[string]any{"query": "reranker relevance of search hits", "knowledge_id": "docs", "search_type": mode, "max_results": 10}
		if minScore != nil {
			req["min_score"] = minScore
		}
		body, _ := json.Marshal(req)
		var res struct {
			Data []map[string]any `json:"data"`
		}
		ts.json(http.MethodPost, "/knowledge/search", "", string(body), http.StatusOK, &res)
		return res.Data
	}
	for _, mode := range []string{"vector", "keyword", "hybrid"} {
		t.Run(mode, func(t *testing.T) {
			all := find(t, mode, nil)
			require.GreaterOrEqual(t, len(all), 3)
			for _, h := range all {
				require.GreaterOrEqual(t, h["score"].(float64), 0.0)
				require.LessOrEqual(t, h["score"].(float64), 1.0)
			}
			cut := all[1]["score"].(float64)
			require.Less(t, all[len(all)-1]["score"].(float64), cut)
			var want []map[string]any
			for _, h := range all {
				if h["score"].(float64) >= cut {
					want = append(want, h)
				}
			}
			require.Equal(t, want, find(t, mode, cut))
		})
	}
	ts.json(http.MethodPost, "/knowledge/search", "", `{"query":"x","knowledge_id":"docs","min_score":1.5}`, http.StatusUnprocessableEntity, nil)

	// The console's search playground takes a min score too.
	hybrid := find(t, "hybrid", nil)
	playground := func(minScore string) (hits int, text string) {
		form := url.Values{"query": {"reranker relevance of search hits"}, "knowledge_id": {"docs"}, "mode": {"hybrid"}, "min_score": {minScore}}
		resp, body := ts.page("POST", "/ui/knowledge/search", "", form, "HX-Request", "true")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		d := doc(t, body)
		return d.Find("[data-testid=hit]").Length(), d.Text()
	}
	n, _ := playground("")
	require.Len(t, hybrid, n)
	n, _ = playground(strconv.FormatFloat(hybrid[1]["score"].(float64), 'f', -1, 64))
	require.Equal(t, 2, n)
	n, text := playground("2")
	require.Zero(t, n)
	require.Contains(t, text, "Min score must be a number from 0 to 1.")
}
