package kb_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
)

// qualityKB is the knowledge base of the retrieval quality test: the corpus
// is Markdown, chunked by headings into pieces of at most 200 tokens.
const qualityKB = "kind: Knowledge\nname: help\nchunking: {strategy: markdown, size: 200, overlap: 30}\n"

// qualityMinHybridRecall3 is the bar: hybrid search finds the right document
// in its top 3 hits for at least this share of the questions.
const qualityMinHybridRecall3 = 0.90

// question is a hand-written question and the corpus document answering it.
type question struct {
	Q   string `yaml:"q"`
	Doc string `yaml:"doc"`
}

// knowledgeSpecs loads the Knowledge documents of a YAML source written into
// a fresh directory.
func knowledgeSpecs(tb testing.TB, src string) []*spec.Knowledge {
	tb.Helper()
	dir := tb.TempDir()
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "kb.yaml"), []byte(src), 0o644))
	set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
	require.NoError(tb, err)
	require.Empty(tb, set.Diagnostics().Errors())
	var out []*spec.Knowledge
	for _, k := range set.Keys() {
		if kn := set.Knowledge(k.Name); kn != nil && k.Kind == spec.KindKnowledge {
			out = append(out, kn.WithModels(set.Model)) // as Snapshot.Knowledge gives them
		}
	}
	require.NotEmpty(tb, out)
	return out
}

// runService starts s.Run and returns the function that stops it and waits
// for it to return.
func runService(s *kb.Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// loadQualityCorpus reads testdata/corpus/*.md and testdata/questions.yaml.
func loadQualityCorpus(t *testing.T) (map[string][]byte, []question) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	corpus := map[string][]byte{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		corpus[filepath.Base(p)] = data
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "questions.yaml"))
	require.NoError(t, err)
	var qs []question
	require.NoError(t, yaml.Unmarshal(raw, &qs))
	require.NotEmpty(t, qs)
	asked := map[string]bool{}
	for _, q := range qs {
		require.NotEmpty(t, q.Q)
		require.Contains(t, corpus, q.Doc, "question %q names a document that is not in the corpus", q.Q)
		asked[q.Doc] = true
	}
	for name := range corpus {
		require.True(t, asked[name], "no question is answered by %s", name)
	}
	return corpus, qs
}

// TestRetrievalQuality ingests a small help-center corpus with the local
// embedder and checks that hybrid search puts the document answering each
// hand-written question in its top 3 hits for at least 90% of the
// questions. It logs recall@1, recall@3 and MRR@10 of every mode, and the
// questions each mode misses at 3.
func TestRetrievalQuality(t *testing.T) {
	t.Parallel()
	corpus, questions := loadQualityCorpus(t)

	// No queue, so each document is ingested as it is submitted, in name
	// order: BM25 document weights
	// depend on the average chunk length when each document is ingested, so
	// this keeps the scores, and the table, reproducible.
	s, err := kb.New(t.Context(), kb.Options{Documents: kb.NewMemoryDocuments()})
	require.NoError(t, err)
	s.Configure(t.Context(), knowledgeSpecs(t, qualityKB))
	stop := runService(s)
	defer stop()

	names := slices.Sorted(maps.Keys(corpus))
	ids := make([]string, 0, len(names))
	for _, n := range names {
		d, created, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "help", Name: n, Content: corpus[n]})
		require.NoError(t, err)
		require.True(t, created, n)
		ids = append(ids, d.ID)
	}
	chunks := 0
	for _, id := range ids {
		var d *knowledge.Document
		require.Eventually(t, func() bool {
			d, err = s.Get(t.Context(), id)
			return err == nil && d.Status != knowledge.StatusProcessing
		}, 30*time.Second, 2*time.Millisecond)
		require.Equal(t, knowledge.StatusCompleted, d.Status, "%s: %s", d.Name, d.Message)
		chunks += d.Chunks
	}
	t.Logf("corpus: %d documents, %d chunks; %d questions", len(ids), chunks, len(questions))

	type result struct {
		r1, r3, mrr float64
		misses      []string // questions whose document is not in the top 3
	}
	modes := []string{knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid}
	results := map[string]*result{}
	for _, mode := range modes {
		r := &result{}
		results[mode] = r
		for _, q := range questions {
			hits, err := s.Search(t.Context(), []string{"help"}, q.Q, mode, 10, nil)
			require.NoError(t, err, "%s: %q", mode, q.Q)
			rank := slices.IndexFunc(hits, func(h knowledge.Hit) bool { return h.Document == q.Doc })
			if rank == 0 {
				r.r1++
			}
			if rank >= 0 && rank < 3 {
				r.r3++
			} else {
				top := make([]string, 0, 3)
				for _, h := range hits[:min(3, len(hits))] {
					top = append(top, fmt.Sprintf("%s (%.4f)", h.Document, h.Score))
				}
				at := "not in the top 10"
				if rank >= 0 {
					at = fmt.Sprintf("first at rank %d", rank+1)
				}
				r.misses = append(r.misses, fmt.Sprintf("%q: want %s, %s; top 3: %s", q.Q, q.Doc, at, strings.Join(top, ", ")))
			}
			if rank >= 0 {
				r.mrr += 1 / float64(rank+1)
			}
		}
		n := float64(len(questions))
		r.r1, r.r3, r.mrr = r.r1/n, r.r3/n, r.mrr/n
	}

	var table strings.Builder
	fmt.Fprintf(&table, "retrieval quality, local embedder (dimension %d), %d questions:\n", kb.LocalDimension, len(questions))
	fmt.Fprintf(&table, "  %-8s %9s %9s %8s\n", "mode", "recall@1", "recall@3", "MRR@10")
	for _, mode := range modes {
		r := results[mode]
		fmt.Fprintf(&table, "  %-8s %9.3f %9.3f %8.3f\n", mode, r.r1, r.r3, r.mrr)
	}
	t.Log(table.String())
	for _, mode := range modes {
		for _, m := range results[mode].misses {
			t.Logf("%s miss@3: %s", mode, m)
		}
	}
	require.GreaterOrEqual(t, results[knowledge.ModeHybrid].r3, qualityMinHybridRecall3,
		"hybrid recall@3 is below the bar; see the misses logged above")
}
