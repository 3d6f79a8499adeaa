package console_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestListRuns lists an agent's and a team's runs: newest first, by session
// and status, paged, each as GET …/runs/{run_id} answers it.
func TestListRuns(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var first runJSON
	ts.json(http.MethodPost, "/agents/helpdesk/runs", "", `{"message":"one","stream":false}`, http.StatusOK, &first)
	sess := first.SessionID
	ids := []string{first.RunID} // oldest first
	for _, msg := range []string{"two", "three"} {
		var r runJSON
		ts.json(http.MethodPost, "/agents/helpdesk/runs", "", `{"message":"`+msg+`","stream":false,"session_id":"`+sess+`"}`, http.StatusOK, &r)
		ids = append(ids, r.RunID)
	}
	var other runJSON
	ts.json(http.MethodPost, "/agents/helpdesk/runs", "", `{"message":"elsewhere","stream":false}`, http.StatusOK, &other)
	var team runJSON
	ts.json(http.MethodPost, "/teams/crew/runs", "", `{"message":"team","stream":false}`, http.StatusOK, &team)

	list := func(path string) ([]string, http.Header) {
		t.Helper()
		status, body, h := ts.do(http.MethodGet, path, "", "", "")
		require.Equal(t, http.StatusOK, status, body)
		var runs []runJSON
		require.NoError(t, json.Unmarshal([]byte(body), &runs))
		out := []string{}
		for _, r := range runs {
			out = append(out, r.RunID)
		}
		return out, h
	}
	tests := []struct {
		name, path string
		want       []string
		total      string
	}{
		{"every run of the agent, newest first", "/agents/helpdesk/runs", []string{other.RunID, ids[2], ids[1], ids[0]}, "4"},
		{"one session", "/agents/helpdesk/runs?session_id=" + sess, []string{ids[2], ids[1], ids[0]}, "3"},
		{"one status", "/agents/helpdesk/runs?session_id=" + sess + "&status=COMPLETED", []string{ids[2], ids[1], ids[0]}, "3"},
		{"status in lower case", "/agents/helpdesk/runs?status=running", []string{}, "0"},
		{"a page", "/agents/helpdesk/runs?limit=2&page=2", []string{ids[1], ids[0]}, "4"},
		{"a team's runs, not its members'", "/teams/crew/runs", []string{team.RunID}, "1"},
		{"another agent", "/agents/calc/runs", []string{}, "0"},
		{"another agent's session", "/agents/calc/runs?session_id=" + sess, []string{}, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, h := list(tt.path)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.total, h.Get("X-Total-Count"))
		})
	}

	t.Run("paging headers", func(t *testing.T) {
		_, h := list("/agents/helpdesk/runs?limit=2")
		require.Equal(t, "2", h.Get("X-Total-Pages"))
		require.Equal(t, "1", h.Get("X-Page"))
		require.Contains(t, h.Get("Link"), `page=2`)
		require.Contains(t, h.Get("Link"), `rel="next"`)
		require.NotContains(t, h.Get("Link"), `rel="prev"`)
	})

	t.Run("each run as GET …/runs/{run_id} answers it", func(t *testing.T) {
		status, body, _ := ts.do(http.MethodGet, "/agents/helpdesk/runs?session_id="+sess, "", "", "")
		require.Equal(t, http.StatusOK, status, body)
		var listed []map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &listed))
		require.Len(t, listed, 3)
		for _, item := range listed {
			status, body, _ := ts.do(http.MethodGet, "/agents/helpdesk/runs/"+item["run_id"].(string), "", "", "")
			require.Equal(t, http.StatusOK, status, body)
			var one map[string]any
			require.NoError(t, json.Unmarshal([]byte(body), &one))
			require.Equal(t, one, item)
			require.NotContains(t, item, "messages")
		}
	})

	for _, q := range []string{"status=DONE", "limit=0", "limit=101", "page=0"} {
		t.Run("refused: "+q, func(t *testing.T) {
			status, body, _ := ts.do(http.MethodGet, "/agents/helpdesk/runs?"+q, "", "", "")
			require.Equal(t, http.StatusUnprocessableEntity, status, body)
			require.True(t, strings.Contains(body, "detail"), body)
		})
	}
}
