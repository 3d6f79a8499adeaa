package learning_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/learning"
	"github.com/troupehq/troupe/spec"
)

// newKB returns a knowledge service with one base, lessons, on the embedded
// store and the local embedder; it ingests inline (no queue).
func newKB(t *testing.T) *kb.Service {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kb.yaml"), []byte("kind: Knowledge\nname: lessons\n---\nkind: Knowledge\nname: other\n"), 0o644))
	set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
	require.NoError(t, err)
	require.Empty(t, set.Diagnostics().Errors())
	docs := kb.NewMemoryDocuments()
	s, err := kb.New(t.Context(), kb.Options{Documents: docs, Chunks: embedded.NewMemoryRepository(), Stats: docs})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	s.Configure(t.Context(), []*spec.Knowledge{set.Knowledge("lessons"), set.Knowledge("other")})
	return s
}

func listLearnings(t *testing.T, s *kb.Service, base string) []knowledge.Document {
	t.Helper()
	docs, _, err := s.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: base, Limit: 100})
	require.NoError(t, err)
	return docs
}

// similarity is the cosine similarity the duplicate search sees between a
// stored learning and a query.
func similarity(t *testing.T, stored, query string) float64 {
	t.Helper()
	s := newKB(t)
	l := learning.New(learning.Options{Knowledge: s, Threshold: 2}) // never merges
	_, err := l.Save(t.Context(), "lessons", learning.Origin{RunID: "r0"}, learning.Insight{Text: stored})
	require.NoError(t, err)
	hits, err := s.Search(t.Context(), []string{"lessons"}, query, knowledge.ModeVector, 1, nil)
	require.NoError(t, err)
	require.Len(t, hits, 1)
	return hits[0].Score
}

// TestSaveMergesNearDuplicates: a second insight merges into a stored one
// exactly when their cosine similarity reaches the threshold (or their
// texts are equal but for case, punctuation and spacing); merging a run
// again is a no-op.
func TestSaveMergesNearDuplicates(t *testing.T) {
	t.Parallel()
	const first = "The payments API rejects refunds older than 90 days with HTTP 409."
	const near = "The payments API rejects refunds older than 90 days, answering HTTP 409."
	score := similarity(t, first, near)
	t.Logf("cosine similarity of the reworded pair (local embedder): %.4f", score)
	require.Greater(t, score, 0.5)
	require.Less(t, score, 0.999)

	tests := []struct {
		name      string
		second    string
		threshold float64
		want      learning.Outcome
	}{
		{"just under the similarity merges", near, score - 0.001, learning.Merged},
		{"just over the similarity adds", near, score + 0.001, learning.Saved},
		{"the default threshold merges a reworded insight", near, 0, learning.Merged},
		{"equal text but for case and punctuation merges at any threshold", "the payments api rejects refunds older than 90 days with http 409", 1.5, learning.Merged},
		{"another insight is added", "The office coffee machine is descaled every Friday at noon.", 0, learning.Saved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newKB(t)
			l := learning.New(learning.Options{Knowledge: s, Threshold: tt.threshold})
			got, err := l.Save(t.Context(), "lessons", learning.Origin{RunID: "r1", SessionID: "s1", UserID: "alice", Agent: "a"}, learning.Insight{Text: first})
			require.NoError(t, err)
			require.Equal(t, learning.Saved, got)
			got, err = l.Save(t.Context(), "lessons", learning.Origin{RunID: "r2", SessionID: "s2", UserID: "bob", Agent: "a"}, learning.Insight{Text: tt.second})
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			docs := listLearnings(t, s, "lessons")
			if tt.want == learning.Saved {
				require.Len(t, docs, 2)
				return
			}
			require.Len(t, docs, 1, "never two copies")
			d := docs[0]
			require.Equal(t, float64(2), toFloat(d.Metadata["count"]))
			require.Equal(t, []any{"r1", "r2"}, d.Metadata["run_ids"])
			require.Equal(t, []any{"alice", "bob"}, d.Metadata["user_ids"])
			require.Equal(t, "r1", d.Metadata["run_id"], "the learning links to the run that wrote it")
			require.Equal(t, "r2", d.Metadata["last_run_id"])

			// The same run merged again (a retried job) changes nothing.
			got, err = l.Save(t.Context(), "lessons", learning.Origin{RunID: "r2", UserID: "bob"}, learning.Insight{Text: tt.second})
			require.NoError(t, err)
			require.Equal(t, learning.Merged, got)
			again := listLearnings(t, s, "lessons")
			require.Len(t, again, 1)
			require.Equal(t, d.Metadata, again[0].Metadata)
		})
	}
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case float64:
		return n
	}
	return -1
}

// TestSaveLooksOnlyAtLearnings: an uploaded document with the insight's
// text is not a learning to merge into.
func TestSaveLooksOnlyAtLearnings(t *testing.T) {
	t.Parallel()
	s := newKB(t)
	_, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "lessons", Name: "manual.txt", Content: []byte("Refunds older than 90 days are rejected.")})
	require.NoError(t, err)
	l := learning.New(learning.Options{Knowledge: s})
	got, err := l.Save(t.Context(), "lessons", learning.Origin{RunID: "r1"}, learning.Insight{Text: "Refunds older than 90 days are rejected!"})
	require.NoError(t, err)
	require.Equal(t, learning.Saved, got)
	require.Len(t, listLearnings(t, s, "lessons"), 2)
}

// TestEraseUser: a learning only the user contributed is deleted; one
// merged with another user's loses the user and passes to them; other
// users' learnings and other documents stay.
func TestEraseUser(t *testing.T) {
	t.Parallel()
	s := newKB(t)
	l := learning.New(learning.Options{Knowledge: s})
	save := func(base, run, user, text string) {
		_, err := l.Save(t.Context(), base, learning.Origin{RunID: run, UserID: user, Agent: "a"}, learning.Insight{Text: text})
		require.NoError(t, err)
	}
	save("lessons", "r1", "alice", "Alice's team ships on Thursdays.")
	save("other", "r2", "alice", "The staging database is reset nightly.")
	save("lessons", "r3", "alice", "The payments API rejects refunds older than 90 days.")
	save("lessons", "r4", "bob", "The payments API rejects refunds older than 90 days!")
	save("lessons", "r5", "bob", "The office coffee machine is descaled on Fridays.")
	_, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "lessons", Name: "manual.txt", Metadata: map[string]any{"user_id": "alice"}, Content: []byte("An upload, not a learning.")})
	require.NoError(t, err)

	n, err := l.Erase(t.Context(), "alice")
	require.NoError(t, err)
	require.Equal(t, 3, n)

	require.Empty(t, listLearnings(t, s, "other"))
	left := map[string]map[string]any{}
	for _, d := range listLearnings(t, s, "lessons") {
		left[d.Name] = d.Metadata
	}
	require.Len(t, left, 3)
	require.Contains(t, left, "manual.txt")
	shared := left["learning: The payments API rejects refunds older than 90 days..txt"]
	require.NotNil(t, shared, "%v", left)
	require.Equal(t, "bob", shared["user_id"])
	require.Equal(t, []any{"bob"}, shared["user_ids"])

	n, err = l.Erase(t.Context(), "alice")
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestParseInsights: the answers a model may give.
func TestParseInsights(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []learning.Insight
		err      bool
	}{
		{"objects", `[{"text":"a","topic":"t"},{"text":"b"}]`, []learning.Insight{{Text: "a", Topic: "t"}, {Text: "b"}}, false},
		{"strings", `["a","b"]`, []learning.Insight{{Text: "a"}, {Text: "b"}}, false},
		{"fenced", "```json\n[{\"text\":\"a\"}]\n```", []learning.Insight{{Text: "a"}}, false},
		{"empty", `[]`, nil, false},
		{"prose", `Here are some insights: a, b`, nil, true},
		{"an object", `{"text":"a"}`, nil, true},
		{"numbers", `[1,2]`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := learning.ParseInsights(tt.in)
			if tt.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	many := "["
	for i := range 15 {
		if i > 0 {
			many += ","
		}
		many += `"x"`
	}
	got, err := learning.ParseInsights(many + "]")
	require.NoError(t, err)
	require.Len(t, got, learning.MaxInsights)
}

// proposals records proposed learnings.
type proposals struct{ got []approval.Record }

func (p *proposals) ProposeApproval(_ context.Context, r approval.Record) error {
	p.got = append(p.got, r)
	return nil
}

// TestProposeAndDecide: in mode propose nothing is saved until a decision
// approves it; the proposal's id is stable for a retried job.
func TestProposeAndDecide(t *testing.T) {
	t.Parallel()
	s := newKB(t)
	p := &proposals{}
	l := learning.New(learning.Options{Knowledge: s, Proposals: p})
	ls := &spec.Learning{Knowledge: "lessons", Mode: spec.LearnPropose, Approvers: spec.Approvers{Users: []string{"carol"}}}
	o := learning.Origin{RunID: "r1", SessionID: "s1", UserID: "alice", Agent: "student"}
	for range 2 {
		got, err := l.Keep(t.Context(), ls, o, learning.Insight{Text: "  Keep answers short.  ", Topic: "style"})
		require.NoError(t, err)
		require.Equal(t, learning.Proposed, got)
	}
	require.Len(t, p.got, 2)
	require.Equal(t, p.got[0].ID, p.got[1].ID, "a retried proposal has the same id")
	r := p.got[0]
	require.Equal(t, approval.TargetLearning, r.TargetKind)
	require.Equal(t, "student", r.TargetName)
	require.Equal(t, map[string]any{"text": "Keep answers short.", "topic": "style", "knowledge": "lessons"}, r.Args)
	require.Equal(t, spec.Approvers{Users: []string{"carol"}}, r.Approvers)
	require.Empty(t, listLearnings(t, s, "lessons"))

	r.Status = approval.StatusRejected
	require.NoError(t, l.Decide(t.Context(), &r))
	require.Empty(t, listLearnings(t, s, "lessons"))
	r.Status = approval.StatusApproved
	require.NoError(t, l.Decide(t.Context(), &r))
	docs := listLearnings(t, s, "lessons")
	require.Len(t, docs, 1)
	require.Equal(t, "r1", docs[0].Metadata["run_id"])
	require.Equal(t, "alice", docs[0].Metadata["user_id"])

	// A team's proposal says so, and its learning names the team.
	team := learning.Origin{RunID: "r2", UserID: "alice", Agent: "crew", Team: true}
	_, err := l.Keep(t.Context(), ls, team, learning.Insight{Text: "Teams split work by topic."})
	require.NoError(t, err)
	tr := p.got[2]
	require.Equal(t, "team crew proposes a learning for knowledge base lessons", tr.Reason)
	require.Equal(t, "team", tr.Args["kind"])
	tr.Status = approval.StatusApproved
	require.NoError(t, l.Decide(t.Context(), &tr))
	docs = listLearnings(t, s, "lessons")
	require.Len(t, docs, 2)
	for _, d := range docs {
		if d.Metadata["run_id"] == "r2" {
			require.Equal(t, "crew", d.Metadata["team"])
			require.Nil(t, d.Metadata["agent"])
		}
	}

	_, err = learning.New(learning.Options{Knowledge: s}).Keep(t.Context(), ls, o, learning.Insight{Text: "x"})
	require.ErrorContains(t, err, "use learning mode always or agentic")
}
