package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

// The benchmark corpus: 100,000 chunks of 384 dimensions in one knowledge
// base, 10 chunks per document, texts of 80-200 words drawn from a 5,000-word
// vocabulary with a Zipf distribution (s = 1.1), as natural text has.
const (
	benchChunks = 100_000
	benchDim    = 384
	benchVocab  = 5_000
)

type benchCorpus struct {
	store    *Store
	queries  []knowledge.Query // vector, text and sparse set; mode per benchmark
	heapMB   float64           // index heap per benchChunks
	loadTime time.Duration
	postings int
}

var (
	benchOnce sync.Once
	bench     *benchCorpus
)

func benchWords(r *rand.Rand) func(n int) string {
	words := vocabulary(benchVocab)
	z := rand.NewZipf(r, 1.1, 1, benchVocab-1)
	return func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[z.Uint64()])
		}
		return b.String()
	}
}

func loadBench(b *testing.B) *benchCorpus {
	benchOnce.Do(func() {
		ctx := context.Background()
		r := rand.New(rand.NewPCG(2024, 384))
		text := benchWords(r)
		repo := NewMemoryRepository()
		const batch = 1000
		var stats bm25.Stats
		for start := 0; start < benchChunks; start += batch {
			recs := make([]knowledge.ChunkRecord, batch)
			avgdl := stats.AvgDL()
			for i := range recs {
				n := start + i
				doc := fmt.Sprintf("doc%06d", n/10)
				t := text(80 + r.IntN(121))
				w, dl := bm25.Doc(t, avgdl)
				stats.Add(w, dl)
				recs[i] = knowledge.ChunkRecord{
					Chunk: knowledge.Chunk{ID: knowledge.ChunkID(doc, n%10), KnowledgeID: kb, DocumentID: doc, Document: doc + ".pdf",
						Index: n % 10, Text: t, Page: 1 + n%10/3, Heading: "Chapter > Section",
						Metadata: map[string]any{"group": float64(n / 10 % 4), "source": "bench"}},
					Dense: randVec(r, benchDim), Sparse: w, Len: dl,
				}
			}
			if err := repo.Put(ctx, recs); err != nil {
				panic(err)
			}
		}

		// EMBEDDED_BENCH_FLOAT32=1 measures the index without int8 codes
		// (the float32 scan, as on CPUs without AVX2).
		if os.Getenv("EMBEDDED_BENCH_FLOAT32") == "1" {
			useCodes = false
		}

		// Index memory: the heap growth of building the index from the
		// repository (whose own records stay alive throughout).
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		s, err := Open(ctx, repo, Options{})
		if err != nil {
			panic(err)
		}
		loadTime := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)

		st := s.Stats(kb)
		c := &benchCorpus{store: s, loadTime: loadTime,
			heapMB: float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20) * benchChunks / float64(s.Count(kb))}
		for _, list := range s.kbs[kb].post {
			c.postings += len(list)
		}
		for range 512 {
			q := text(2 + r.IntN(5))
			c.queries = append(c.queries, knowledge.Query{Text: q, Vector: randVec(r, benchDim), Sparse: st.Query(q), TopK: 10})
		}
		bench = c
	})
	if bench.store.Count(kb) != benchChunks {
		b.Fatalf("corpus has %d chunks", bench.store.Count(kb))
	}
	return bench
}

// BenchmarkSearch measures one search at a time at 100k chunks × 384
// dimensions; run it on one core (-cpu 1). It reports the 99th percentile
// latency (p99-ms) beside ns/op.
func BenchmarkSearch(b *testing.B) {
	c := loadBench(b)
	ctx := context.Background()
	cases := []struct {
		name    string
		mode    string
		filters knowledge.Filters
	}{
		{"vector", knowledge.ModeVector, nil},
		{"keyword", knowledge.ModeKeyword, nil},
		{"hybrid", knowledge.ModeHybrid, nil},
		{"hybrid-filtered", knowledge.ModeHybrid, knowledge.Filters{"group": []any{1, 3}}}, // half the chunks
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var lat []time.Duration
			i := 0
			for b.Loop() {
				q := c.queries[i%len(c.queries)]
				q.Mode, q.Filters = tc.mode, tc.filters
				i++
				t0 := time.Now()
				hits, err := c.store.Search(ctx, kb, q)
				lat = append(lat, time.Since(t0))
				if err != nil || len(hits) == 0 {
					b.Fatalf("search: %v, %d hits", err, len(hits))
				}
			}
			if tc.mode != knowledge.ModeKeyword {
				k := 10
				if tc.mode == knowledge.ModeHybrid {
					k = 50 // max(4·TopK, 50)
				}
				b.ReportMetric(c.candidates(k, tc.filters), "rescored/op")
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
		})
	}
}

// BenchmarkIndexMemory reports the index's heap per 100k chunks (vectors,
// postings, metadata; texts stay in the repository) and the time to load it.
func BenchmarkIndexMemory(b *testing.B) {
	c := loadBench(b)
	for b.Loop() {
		_ = c.store.Count(kb)
	}
	b.ReportMetric(c.heapMB, "MB/100k-chunks")
	b.ReportMetric(float64(benchChunks*benchDim*4)/(1<<20), "vector-MB")
	b.ReportMetric(float64(c.postings)/benchChunks, "postings/chunk")
	b.ReportMetric(c.loadTime.Seconds(), "load-s")
}

// candidates is the mean number of slots the int8 pass could not rule out
// in a top-k vector scan (at most this many are rescored in float32).
func (c *benchCorpus) candidates(k int, filters knowledge.Filters) float64 {
	x := c.store.kbs[kb]
	if !x.quant {
		return 0
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	sc := new(scratch)
	total := 0
	for _, q := range c.queries[:50] {
		f := x.compileFilter(filters, nil)
		x.vectorCodes(q.Vector, k, f, sc)
		total += len(sc.cands)
	}
	return float64(total) / 50
}
