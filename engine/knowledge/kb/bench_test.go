package kb_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/chunk"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
	"github.com/troupehq/troupe/engine/knowledge/kb"
)

// mdGen writes generated but realistic Markdown: titled documents of
// sections with headings, paragraphs of sentences of varied length, bullet
// and numbered lists, and the odd bold or code span. Content words follow a
// Zipf distribution over a vocabulary of real words (those of the quality
// corpus) followed by a long tail of made-up words, with function words
// interleaved as in prose, so term frequencies, posting lengths and word
// lengths look like those of real documentation.
type mdGen struct {
	r    *rand.Rand
	zipf *rand.Zipf
	vary func() bool // a function word rather than a content word
	// words are the content words by decreasing frequency.
	words []string
}

// functionWords are interleaved with content words (most are stopwords of
// the embedder and of BM25, as in real text).
var functionWords = strings.Fields("the a to of and in for is with you your can on this that it be or by from as are when if not will an at all more")

// syllables build the tail of the vocabulary.
var syllables = strings.Fields("ba ker tion sync ment ri lo pa ver ex in con de pro ta mi na sel for com able ing er ly ous stra plex quo vin dar gen tor al ic um ple sto cro mer ant ist ure flo tri nor pel zu ka ven dex ops")

func newMDGen(b *testing.B, seed uint64) *mdGen {
	b.Helper()
	r := rand.New(rand.NewPCG(seed, 0x6b62))
	seen := map[string]bool{}
	var words []string
	paths, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.md"))
	if err != nil || len(paths) == 0 {
		b.Fatalf("no quality corpus to draw words from: %v", err)
	}
	slices.Sort(paths)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		for _, w := range strings.FieldsFunc(strings.ToLower(string(data)), func(r rune) bool { return !unicode.IsLetter(r) }) {
			if utf8.RuneCountInString(w) > 1 && !seen[w] && !slices.Contains(functionWords, w) {
				seen[w] = true
				words = append(words, w)
			}
		}
	}
	r.Shuffle(len(words), func(i, j int) { words[i], words[j] = words[j], words[i] })
	for len(words) < 30_000 {
		var w strings.Builder
		for range 2 + r.IntN(3) {
			w.WriteString(syllables[r.IntN(len(syllables))])
		}
		if s := w.String(); !seen[s] {
			seen[s] = true
			words = append(words, s)
		}
	}
	g := &mdGen{r: r, words: words, zipf: rand.NewZipf(r, 1.1, 2, uint64(len(words)-1))}
	g.vary = func() bool { return r.IntN(100) < 38 }
	return g
}

func (g *mdGen) word() string {
	if g.vary() {
		return functionWords[g.r.IntN(len(functionWords))]
	}
	return g.words[g.zipf.Uint64()]
}

func (g *mdGen) title(b *strings.Builder, n int) {
	for i := range n {
		w := g.words[g.zipf.Uint64()]
		if i > 0 {
			b.WriteByte(' ')
			if g.r.IntN(3) > 0 {
				b.WriteString(w)
				continue
			}
		}
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
}

func (g *mdGen) sentence(b *strings.Builder, n int) {
	for i := range n {
		w := g.word()
		switch {
		case i == 0:
			w = strings.ToUpper(w[:1]) + w[1:]
		case g.r.IntN(40) == 0:
			w = "**" + w + "**"
		case g.r.IntN(60) == 0:
			w = "`" + w + "_" + g.words[g.r.IntN(200)] + "`"
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
		if i > 2 && i < n-2 && g.r.IntN(12) == 0 {
			b.WriteByte(',')
		}
	}
	if g.r.IntN(15) == 0 {
		b.WriteString("?")
	} else {
		b.WriteString(".")
	}
}

func (g *mdGen) paragraph(b *strings.Builder, sentences int) {
	for i := range sentences {
		if i > 0 {
			b.WriteByte(' ')
		}
		g.sentence(b, 6+g.r.IntN(17))
	}
	b.WriteString("\n\n")
}

func (g *mdGen) list(b *strings.Builder, items int) {
	numbered := g.r.IntN(3) == 0
	for i := range items {
		if numbered {
			fmt.Fprintf(b, "%d. ", i+1)
		} else {
			b.WriteString("- ")
		}
		g.sentence(b, 3+g.r.IntN(10))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
}

// section writes a "##" (or "###") heading and a body of about words
// words: paragraphs and lists.
func (g *mdGen) section(b *strings.Builder, words int) {
	b.WriteString(strings.Repeat("#", 2+g.r.IntN(2)) + " ")
	g.title(b, 2+g.r.IntN(4))
	b.WriteString("\n\n")
	for start := b.Len(); b.Len()-start < words*6; {
		if g.r.IntN(4) == 0 {
			g.list(b, 3+g.r.IntN(4))
		} else {
			g.paragraph(b, 1+g.r.IntN(4))
		}
	}
}

// document writes a titled document of about size bytes.
func (g *mdGen) document(size int) []byte {
	var b strings.Builder
	b.WriteString("# ")
	g.title(&b, 2+g.r.IntN(5))
	b.WriteString("\n\n")
	g.paragraph(&b, 2+g.r.IntN(3))
	for b.Len() < size {
		g.section(&b, 80+g.r.IntN(300))
	}
	return []byte(b.String())
}

// oneChunkSection writes a section that the markdown chunker at size 200
// keeps in one chunk: a heading and 40 to 130 words of paragraphs and lists.
func (g *mdGen) oneChunkSection(b *strings.Builder) {
	for {
		var s strings.Builder
		s.WriteString("## ")
		g.title(&s, 2+g.r.IntN(4))
		s.WriteString("\n\n")
		target := 40 + g.r.IntN(91)
		for n := 0; n < target; {
			var p strings.Builder
			if g.r.IntN(4) == 0 {
				g.list(&p, 2+g.r.IntN(3))
			} else {
				g.paragraph(&p, 1+g.r.IntN(3))
			}
			n += len(strings.Fields(p.String()))
			s.WriteString(p.String())
		}
		if chunk.Tokens(s.String()) <= 190 {
			b.WriteString(s.String())
			return
		}
	}
}

// notifyingDocs reports documents leaving the processing status, so
// benchmarks measure ingestion without polling.
type notifyingDocs struct {
	*kb.MemoryDocuments
	done chan string
}

func (n *notifyingDocs) Update(ctx context.Context, d *knowledge.Document) error {
	err := n.MemoryDocuments.Update(ctx, d)
	if err == nil && d.Status != knowledge.StatusProcessing {
		n.done <- d.ID
	}
	return err
}

// ingest submits docs and waits until every one has been ingested.
func ingest(b *testing.B, s *kb.Service, docs *notifyingDocs, knowledgeID string, contents [][]byte) (chunks int) {
	b.Helper()
	ctx := context.Background()
	for i, c := range contents {
		if _, created, err := s.Submit(ctx, kb.Upload{KnowledgeID: knowledgeID, Name: fmt.Sprintf("doc%04d.md", i), Content: c}); err != nil || !created {
			b.Fatalf("submitting doc%04d.md: created %v, %v", i, created, err)
		}
	}
	for range contents {
		id := <-docs.done
		d, err := s.Get(ctx, id)
		if err != nil || d.Status != knowledge.StatusCompleted {
			b.Fatalf("document %s did not complete: %+v, %v", id, d, err)
		}
		chunks += d.Chunks
	}
	return chunks
}

// BenchmarkIngestMarkdown measures ingestion on one core: from Submit until
// the documents are completed (reading, chunking, local embedding, BM25
// weights, writing to the embedded store over a memory repository), over
// about 2 MB of Markdown in 30-odd documents of 10 to 120 KB. MB/s is the
// throughput.
func BenchmarkIngestMarkdown(b *testing.B) {
	g := newMDGen(b, 1)
	var contents [][]byte
	total := 0
	for total < 2<<20 {
		c := g.document(10<<10 + g.r.IntN(110<<10))
		contents = append(contents, c)
		total += len(c)
	}
	for _, tc := range []struct{ name, spec string }{
		{"markdown-200", qualityKB},                        // the quality test's chunking
		{"recursive-512", "kind: Knowledge\nname: help\n"}, // the defaults
	} {
		b.Run(tc.name, func(b *testing.B) {
			ks := knowledgeSpecs(b, tc.spec)
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			b.SetBytes(int64(total))
			chunks := 0
			for b.Loop() {
				b.StopTimer()
				docs := &notifyingDocs{MemoryDocuments: kb.NewMemoryDocuments(), done: make(chan string, len(contents))}
				s, err := kb.New(context.Background(), kb.Options{Documents: docs, Chunks: embedded.NewMemoryRepository()})
				if err != nil {
					b.Fatal(err)
				}
				s.Configure(context.Background(), ks)
				stop := runService(s)
				runtime.GC()
				b.StartTimer()
				chunks = ingest(b, s, docs, "help", contents)
				b.StopTimer()
				stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(chunks), "chunks")
			b.ReportMetric(float64(len(contents)), "docs")
		})
	}
}

// Search benchmark corpus: searchChunks chunks in searchDocs documents.
const (
	searchChunks = 100_000
	searchDocs   = 100
)

// BenchmarkSearch100k measures kb.Service.Search (query embedding, BM25
// query weights, the embedded store's search and the texts of the hits) over
// one knowledge base of 100,000 chunks ingested through Submit: 100
// generated Markdown documents of 1,000 sections, each section one chunk of
// 40-130 words. It reports the p50 and p99 latency of one search at a time
// per mode, and the memory the knowledge base takes (HeapInuse growth per
// 100k chunks): heap-MB is everything built (service, index, and the memory
// document and chunk repositories, which hold the raw documents, chunk
// texts, vectors and BM25 weights that production keeps in SQL); index-MB
// is the in-process index alone, measured by opening a second service over
// the same repositories. Queries alternate between the quality questions
// and generated ones of 2 to 6 words drawn from the corpus distribution.
//
// Run it with more iterations for stable percentiles, for example
// -bench Search100k -benchtime 2000x (add -cpu 1 for one core).
func BenchmarkSearch100k(b *testing.B) {
	if testing.Short() {
		b.Skip("builds 100,000 chunks")
	}
	ctx := context.Background()
	g := newMDGen(b, 2)
	ks := knowledgeSpecs(b, "kind: Knowledge\nname: bench\nchunking: {strategy: markdown, size: 200, overlap: 30}\n")

	var m0, m1, m2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	docs := &notifyingDocs{MemoryDocuments: kb.NewMemoryDocuments(), done: make(chan string, searchDocs)}
	repo := embedded.NewMemoryRepository()
	s, err := kb.New(ctx, kb.Options{Documents: docs, Chunks: repo})
	if err != nil {
		b.Fatal(err)
	}
	s.Configure(ctx, ks)
	stop := runService(s)
	contents := make([][]byte, searchDocs)
	corpusBytes := 0
	for i := range contents {
		var d strings.Builder
		d.WriteString("# ")
		g.title(&d, 3+g.r.IntN(4))
		d.WriteString("\n\n")
		for range searchChunks / searchDocs {
			g.oneChunkSection(&d)
		}
		contents[i] = []byte(d.String())
		corpusBytes += d.Len()
	}
	genTime := time.Since(start)
	chunks := ingest(b, s, docs, "bench", contents)
	stop()
	buildTime := time.Since(start)
	contents = nil
	runtime.GC()
	runtime.ReadMemStats(&m1)
	if chunks != searchChunks {
		b.Fatalf("built %d chunks, want %d", chunks, searchChunks)
	}
	per100k := func(bytes uint64) float64 { return float64(bytes) / (1 << 20) * 100_000 / float64(chunks) }
	heapMB := per100k(m1.HeapInuse - m0.HeapInuse)

	// The index alone: a second service loads it from the repositories.
	loadStart := time.Now()
	s2, err := kb.New(ctx, kb.Options{Documents: docs, Chunks: repo})
	if err != nil {
		b.Fatal(err)
	}
	loadTime := time.Since(loadStart)
	runtime.GC()
	runtime.ReadMemStats(&m2)
	indexMB := per100k(m2.HeapInuse - m1.HeapInuse)
	runtime.KeepAlive(s2)
	runtime.GC() // s2 is garbage now
	b.Logf("built %d chunks (%.1f MB of Markdown in %d documents) in %v (generation %v); heap %.0f MB, index %.0f MB per 100k chunks (reloaded in %v)",
		chunks, float64(corpusBytes)/(1<<20), searchDocs, buildTime.Round(time.Millisecond), genTime.Round(time.Millisecond), heapMB, indexMB, loadTime.Round(time.Millisecond))

	queries := searchQueries(b, g)
	for _, mode := range []string{knowledge.ModeHybrid, knowledge.ModeVector, knowledge.ModeKeyword} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			var lat []time.Duration
			i := 0
			for b.Loop() {
				q := queries[i%len(queries)]
				i++
				t0 := time.Now()
				hits, err := s.Search(ctx, []string{"bench"}, q, mode, 10, nil)
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				if len(hits) == 0 && mode != knowledge.ModeKeyword {
					b.Fatalf("no hits for %q", q)
				}
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(heapMB, "heap-MB/100k")
			b.ReportMetric(indexMB, "index-MB/100k")
		})
	}
}

// searchQueries alternates the quality questions with generated queries.
func searchQueries(b *testing.B, g *mdGen) []string {
	raw, err := os.ReadFile(filepath.Join("testdata", "questions.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	var qs []question
	if err := yaml.Unmarshal(raw, &qs); err != nil {
		b.Fatal(err)
	}
	var out []string
	for i := range 2 * len(qs) {
		if i%2 == 0 {
			out = append(out, qs[i/2].Q)
			continue
		}
		var q strings.Builder
		g.sentence(&q, 2+g.r.IntN(5))
		out = append(out, strings.TrimRight(q.String(), ".?"))
	}
	return out
}
