package kb_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
)

func TestZZTies(t *testing.T) {
	paths, _ := filepath.Glob("testdata/corpus/*.md")
	slices.Sort(paths)
	raw, _ := os.ReadFile("testdata/questions.yaml")
	var qs []question
	_ = yaml.Unmarshal(raw, &qs)
	s, err := kb.New(t.Context(), kb.Options{Documents: kb.NewMemoryDocuments(), Workers: 1})
	require.NoError(t, err)
	s.Configure(t.Context(), knowledgeSpecs(t, qualityKB))
	stop := runService(s)
	defer stop()
	var ids []string
	for _, p := range paths {
		data, _ := os.ReadFile(p)
		d, _, _ := s.Submit(t.Context(), kb.Upload{KnowledgeID: "help", Name: filepath.Base(p), Content: data})
		ids = append(ids, d.ID)
	}
	for _, id := range ids {
		require.Eventually(t, func() bool { d, _ := s.Get(t.Context(), id); return d.Status == kb.StatusCompleted }, 10*time.Second, time.Millisecond)
	}
	ties, tieDiffDoc := 0, 0
	for _, q := range qs {
		hs, _ := s.Search(t.Context(), []string{"help"}, q.Q, knowledge.ModeHybrid, 10, nil)
		vh, _ := s.Search(t.Context(), []string{"help"}, q.Q, knowledge.ModeVector, 50, nil)
		kh, _ := s.Search(t.Context(), []string{"help"}, q.Q, knowledge.ModeKeyword, 50, nil)
		rk := func(l []knowledge.Hit, id string) int { return slices.IndexFunc(l, func(h knowledge.Hit) bool { return h.ID == id }) + 1 }
		if len(hs) > 1 && hs[0].Score == hs[1].Score {
			ties++
			if hs[0].Document != hs[1].Document {
				tieDiffDoc++
			}
			fmt.Printf("tie at top: %q: %s (v%d,k%d) vs %s (v%d,k%d) want %s\n", q.Q, hs[0].Document, rk(vh, hs[0].ID), rk(kh, hs[0].ID), hs[1].Document, rk(vh, hs[1].ID), rk(kh, hs[1].ID), q.Doc)
		}
	}
	fmt.Println("top-1 ties:", ties, "between different documents:", tieDiffDoc, "of", len(qs))
}
