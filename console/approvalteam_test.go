package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

// TestApprovalNestedTeamMember: a team whose member is a team pauses on the
// inner team's member's call; once continued, the inner team's run is
// stored as a team run (team_id), its member's as an agent run.
func TestApprovalNestedTeamMember(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ inner, via string }{
		{"route", "continue"}, {"coordinate", "continue"}, {"broadcast", "continue"},
		{"route", "inbox"}, {"coordinate", "inbox"}, {"broadcast", "inbox"},
	} {
		inner := tc.inner
		t.Run(inner+" via "+tc.via, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "refunded") }))
			t.Cleanup(srv.Close)
			script := fake.New(fake.Step{ToolCalls: []model.ToolCall{refundCall}})
			script.Repeat = &fake.Step{Content: "clerk done"}
			hq := "\n---\nkind: Team\nname: hq\ndescription: Routes to the desk.\nmode: route\nmodel: echo\nmembers: [desk-" + inner + "]\n"
			ts := startServer(t, withProvider("anthropic", script), withSpecs(fmt.Sprintf(approvalSpecs, srv.URL, "1h")+teamSpecs+hq))

			frames, h := ts.stream("/teams/hq/runs", "", "application/json", `{"message":"refund order A1"}`)
			require.Equal(t, "TeamRunPaused", frames[len(frames)-1].Event, names(frames))
			runID := h.Get("X-Run-Id")
			if tc.via == "continue" {
				frames, _ = ts.stream("/teams/hq/runs/"+runID+"/continue", "", "application/json", `{"tools":[{"tool_call_id":"call-1","confirmed":true}]}`)
				require.Equal(t, "TeamRunCompleted", frames[len(frames)-1].Event, "%v: %v", names(frames), frames[len(frames)-1].Data)
			} else {
				var list struct{ Data []approvalRecord }
				ts.json(http.MethodGet, "/approvals?team_id=hq", "", "", http.StatusOK, &list)
				require.Len(t, list.Data, 1)
				ts.json(http.MethodPost, "/approvals/"+list.Data[0].ID+"/resolve", "", `{"approved":true}`, http.StatusOK, nil)
			}
			done := waitRun(t, ts, "/teams/hq/runs/"+runID, "COMPLETED")

			var runs []struct {
				RunID       string `json:"run_id"`
				ParentRunID string `json:"parent_run_id"`
				AgentID     string `json:"agent_id"`
				TeamID      string `json:"team_id"`
				Status      string `json:"status"`
			}
			ts.json(http.MethodGet, "/sessions/"+done.SessionID+"/runs", "", "", http.StatusOK, &runs)
			byParent := map[string][]string{}
			var deskRun string
			for _, r := range runs {
				who := "agent " + r.AgentID
				if r.TeamID != "" && r.AgentID == "" {
					who = "team " + r.TeamID
				}
				byParent[r.ParentRunID] = append(byParent[r.ParentRunID], who+" "+r.Status)
				if r.ParentRunID == runID {
					deskRun = r.RunID
				}
			}
			b, _ := json.Marshal(byParent)
			require.Equal(t, []string{"team desk-" + inner + " COMPLETED"}, byParent[runID], "%s", b)
			require.Contains(t, byParent[deskRun], "agent clerk COMPLETED", "%s", b)
		})
	}
}
