package milvus

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang/protobuf/proto"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/troupehq/troupe/engine/knowledge"
)

const testDim = 4

var collectionSeq atomic.Int64

// uniqueCollection names a collection no other test (or test run) uses.
func uniqueCollection() string {
	return fmt.Sprintf("troupe_test_%d_%d", time.Now().UnixNano(), collectionSeq.Add(1))
}

// createRequest is the CreateCollection request the store would send.
func createRequest(name string, dim int) *milvuspb.CreateCollectionRequest {
	s := &Store{opts: Options{Collection: name, Dimension: dim}}
	b, err := proto.Marshal(s.schema().ProtoMessage())
	if err != nil {
		panic(err)
	}
	return &milvuspb.CreateCollectionRequest{CollectionName: name, Schema: b}
}

func openStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Collection == "" {
		opts.Collection = uniqueCollection()
	}
	if opts.Dimension == 0 {
		opts.Dimension = testDim
	}
	s, err := New(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestFake runs the behavioural suite against the in-process fake.
func TestFake(t *testing.T) {
	f := startFake(t)
	runStoreSuite(t, func(t *testing.T) *Store {
		return openStore(t, Options{Address: f.addr, Timeout: 5 * time.Second})
	})
}

// TestLive runs the behavioural suite against a real Milvus 2.4.
func TestLive(t *testing.T) {
	addr := os.Getenv("TROUPE_TEST_MILVUS_ADDR")
	if addr == "" {
		t.Skip("set TROUPE_TEST_MILVUS_ADDR=host:port (and optionally TROUPE_TEST_MILVUS_USER, TROUPE_TEST_MILVUS_PASSWORD) to run against a live Milvus")
	}
	runStoreSuite(t, func(t *testing.T) *Store {
		s := openStore(t, Options{
			Address:  addr,
			Username: os.Getenv("TROUPE_TEST_MILVUS_USER"),
			Password: os.Getenv("TROUPE_TEST_MILVUS_PASSWORD"),
			Timeout:  30 * time.Second,
		})
		t.Cleanup(func() {
			if err := s.dropCollection(context.Background()); err != nil {
				t.Errorf("dropping %s: %v", s.opts.Collection, err)
			}
		})
		return s
	})
}

// --- the corpus

func unit(v ...float32) []float32 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / math.Sqrt(n))
	}
	return out
}

type corpus struct {
	kb     string
	docA   string
	docB   string
	docC   string
	chunks []knowledge.Chunk
	dense  [][]float32
	sparse []map[uint32]float32
}

// newCorpus is three documents, five chunks. Against the query vector
// (1,0,0,0) the dense scores are a0 1 > a1 .994 > b1 .6 > c0 .287 > b0 .0995.
func newCorpus(kb string) *corpus {
	c := &corpus{
		kb:   kb,
		docA: knowledge.DocumentID(kb, []byte("A")),
		docB: knowledge.DocumentID(kb, []byte("B")),
		docC: knowledge.DocumentID(kb, []byte("C")),
	}
	metaA := map[string]any{"lang": "en", "year": 2023, "tag": "x", "quote": `he said "hi" \o/`, "page": "cover"}
	metaB := map[string]any{"lang": "fr", "year": 2024, "tag": "y", "quote": `back\slash`, "newline": "a\nb"}
	metaC := map[string]any{"lang": "en", "year": 2025.5, "tag": "z", "quote": `it's`, "draft": true}
	add := func(doc, name string, index int, text string, meta map[string]any, dense []float32, sparse map[uint32]float32) {
		c.chunks = append(c.chunks, knowledge.Chunk{
			ID: knowledge.ChunkID(doc, index), KnowledgeID: kb, DocumentID: doc, Document: name, Index: index,
			Text: text, Page: index + 1, Heading: name + " > Part", Metadata: meta,
		})
		c.dense = append(c.dense, dense)
		c.sparse = append(c.sparse, sparse)
	}
	add(c.docA, "Doc A", 0, "alpha zero", metaA, unit(1, 0, 0, 0), map[uint32]float32{1: 2})
	add(c.docA, "Doc A", 1, "alpha one", metaA, unit(0.9, 0.1, 0, 0), map[uint32]float32{1: 1, 3: 0.6})
	add(c.docB, "Doc B", 0, "beta zero", metaB, unit(0.1, 1, 0, 0), map[uint32]float32{3: 2})
	add(c.docB, "Doc B", 1, "beta one", metaB, unit(0.6, 0.8, 0, 0), map[uint32]float32{}) // no terms
	add(c.docC, "Doc C", 0, "gamma zero", metaC, unit(0.3, 0, 1, 0), map[uint32]float32{4: 1})
	return c
}

func (c *corpus) id(name string) string {
	doc := map[byte]string{'a': c.docA, 'b': c.docB, 'c': c.docC}[name[0]]
	return knowledge.ChunkID(doc, int(name[1]-'0'))
}

func (c *corpus) ids(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = c.id(n)
	}
	return out
}

var (
	queryVector = unit(1, 0, 0, 0)
	ctxBG       = context.Background()
)

func hitIDs(hs []knowledge.Hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.ID
	}
	return out
}

func search(t *testing.T, s *Store, kb string, q knowledge.Query) []knowledge.Hit {
	t.Helper()
	hits, err := s.Search(ctxBG, kb, q)
	require.NoError(t, err)
	return hits
}

func vectorQuery(topK int, f knowledge.Filters) knowledge.Query {
	return knowledge.Query{Mode: knowledge.ModeVector, Vector: queryVector, TopK: topK, Filters: f}
}

func loaded(t *testing.T, s *Store) *corpus {
	t.Helper()
	c := newCorpus("kb_main")
	require.NoError(t, s.Upsert(ctxBG, c.kb, c.chunks, c.dense, c.sparse))
	return c
}

// jsonRoundTrip is v as it comes back from JSON.
func jsonRoundTrip(t *testing.T, v map[string]any) map[string]any {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

// runStoreSuite is the behaviour every Store must have, whatever serves it.
func runStoreSuite(t *testing.T, newStore func(t *testing.T) *Store) {
	t.Run("search modes", func(t *testing.T) {
		s := newStore(t)
		c := loaded(t, s)

		vec := search(t, s, c.kb, vectorQuery(10, nil))
		assert.Equal(t, c.ids("a0", "a1", "b1", "c0", "b0"), hitIDs(vec))
		assert.InDelta(t, 1.0, vec[0].Score, 1e-4)
		assert.InDelta(t, 0.6, vec[2].Score, 1e-4)

		kw := search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeKeyword, Sparse: map[uint32]float32{1: 1}, TopK: 10})
		assert.Equal(t, c.ids("a0", "a1"), hitIDs(kw), "only chunks sharing a term match")
		assert.InDelta(t, 2.0, kw[0].Score, 1e-4)
		assert.InDelta(t, 1.0, kw[1].Score, 1e-4)

		hq := knowledge.Query{Mode: knowledge.ModeHybrid, Vector: queryVector, Sparse: map[uint32]float32{3: 1}, TopK: 10}
		hyb := search(t, s, c.kb, hq)
		assert.Equal(t, c.ids("a1", "b0", "a0", "b1", "c0"), hitIDs(hyb), "a1 is second in both lists, so first fused")
		// Same as fusing the two lists here, into the readable hybrid score.
		v20 := search(t, s, c.kb, vectorQuery(20, nil))
		k20 := search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeKeyword, Sparse: hq.Sparse, TopK: 20})
		want := knowledge.FuseScores(10, knowledge.IDFMass(hq.Sparse), v20, k20)
		require.Equal(t, hitIDs(want), hitIDs(hyb))
		for i := range want {
			assert.InDelta(t, want[i].Score, hyb[i].Score, 1e-6)
		}

		// Hybrid with only one side, and the default mode.
		only := search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeHybrid, Sparse: map[uint32]float32{1: 1}, TopK: 10})
		assert.Equal(t, c.ids("a0", "a1"), hitIDs(only))
		assert.InDelta(t, 0.5, only[0].Score, 1e-6, "keyword score capped at 1, weighted by half")
		def := search(t, s, c.kb, knowledge.Query{Vector: queryVector, Sparse: hq.Sparse, TopK: 10})
		assert.Equal(t, hitIDs(hyb), hitIDs(def))
		// A keyword search without terms finds nothing.
		none := search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeKeyword, Sparse: map[uint32]float32{}, TopK: 10})
		assert.Empty(t, none)
		assert.Empty(t, search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeKeyword, Sparse: map[uint32]float32{99: 1}, TopK: 10}))
	})

	t.Run("hits carry the chunk", func(t *testing.T) {
		s := newStore(t)
		c := loaded(t, s)
		long := knowledge.Chunk{ID: knowledge.ChunkID(c.docC, 1), DocumentID: c.docC, Document: "Doc C", Index: 1,
			Text: strings.Repeat("é", 40000)} // 80000 bytes
		require.NoError(t, s.Upsert(ctxBG, c.kb, []knowledge.Chunk{long}, [][]float32{unit(0, 0, 0, 1)}, []map[uint32]float32{{7: 1}}))

		hits := search(t, s, c.kb, vectorQuery(10, nil))
		require.Len(t, hits, 6)
		byID := map[string]knowledge.Hit{}
		for _, h := range hits {
			byID[h.ID] = h
		}
		for _, want := range c.chunks {
			got, ok := byID[want.ID]
			require.True(t, ok, want.ID)
			want.Metadata = jsonRoundTrip(t, want.Metadata)
			assert.Equal(t, want, got.Chunk)
		}
		got := byID[long.ID].Text
		assert.True(t, utf8.ValidString(got))
		assert.LessOrEqual(t, len(got), maxTextBytes)
		assert.Greater(t, len(got), maxTextBytes-2)
		assert.True(t, strings.HasPrefix(long.Text, got))
		assert.Nil(t, byID[long.ID].Metadata)
	})

	t.Run("re-upserting replaces", func(t *testing.T) {
		s := newStore(t)
		c := loaded(t, s)
		require.NoError(t, s.Upsert(ctxBG, c.kb, c.chunks, c.dense, c.sparse))
		changed := c.chunks[0]
		changed.Text = "alpha zero, second edition"
		// The same id twice in one call: the last wins.
		first := changed
		first.Text = "discarded"
		require.NoError(t, s.Upsert(ctxBG, c.kb,
			[]knowledge.Chunk{first, changed}, [][]float32{c.dense[0], c.dense[0]}, []map[uint32]float32{c.sparse[0], c.sparse[0]}))

		hits := search(t, s, c.kb, vectorQuery(100, nil))
		assert.Equal(t, c.ids("a0", "a1", "b1", "c0", "b0"), hitIDs(hits))
		assert.Equal(t, "alpha zero, second edition", hits[0].Text)

		// Moving a chunk's vector moves it in the ranking.
		require.NoError(t, s.Upsert(ctxBG, c.kb, c.chunks[:1], [][]float32{unit(0, 0, 0, 1)}, c.sparse[:1]))
		hits = search(t, s, c.kb, vectorQuery(100, nil))
		assert.Equal(t, c.ids("a1", "b1", "c0", "b0", "a0"), hitIDs(hits))
	})

	t.Run("delete document", func(t *testing.T) {
		s := newStore(t)
		c := loaded(t, s)
		require.NoError(t, s.DeleteDocument(ctxBG, c.kb, c.docA))
		assert.Equal(t, c.ids("b1", "c0", "b0"), hitIDs(search(t, s, c.kb, vectorQuery(10, nil))))
		assert.Empty(t, search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeKeyword, Sparse: map[uint32]float32{1: 1}, TopK: 10}))
		// Deleting again, or something unknown, is not an error.
		require.NoError(t, s.DeleteDocument(ctxBG, c.kb, c.docA))
		require.NoError(t, s.DeleteDocument(ctxBG, c.kb, `no"such\doc`))
		assert.Len(t, search(t, s, c.kb, vectorQuery(10, nil)), 3)
		assert.Error(t, s.DeleteDocument(ctxBG, c.kb, ""))
	})

	t.Run("filters", func(t *testing.T) {
		s := newStore(t)
		c := loaded(t, s)
		for _, tc := range []struct {
			name    string
			filters knowledge.Filters
			want    []string
		}{
			{"string", knowledge.Filters{"lang": "en"}, c.ids("a0", "a1", "c0")},
			{"other string", knowledge.Filters{"lang": "fr"}, c.ids("b1", "b0")},
			{"list", knowledge.Filters{"tag": []any{"x", "z"}}, c.ids("a0", "a1", "c0")},
			{"typed list", knowledge.Filters{"lang": []string{"fr"}}, c.ids("b1", "b0")},
			{"int", knowledge.Filters{"year": 2024}, c.ids("b1", "b0")},
			{"float64 integral", knowledge.Filters{"year": float64(2024)}, c.ids("b1", "b0")},
			{"json number", knowledge.Filters{"year": json.Number("2024")}, c.ids("b1", "b0")},
			{"float", knowledge.Filters{"year": 2025.5}, c.ids("c0")},
			{"number list", knowledge.Filters{"year": []any{2023, 2025.5}}, c.ids("a0", "a1", "c0")},
			{"string is not a number", knowledge.Filters{"year": "2024"}, nil},
			{"bool", knowledge.Filters{"draft": true}, c.ids("c0")},
			{"quotes and backslash", knowledge.Filters{"quote": `he said "hi" \o/`}, c.ids("a0", "a1")},
			{"backslash", knowledge.Filters{"quote": `back\slash`}, c.ids("b1", "b0")},
			{"apostrophe", knowledge.Filters{"quote": `it's`}, c.ids("c0")},
			{"newline", knowledge.Filters{"newline": "a\nb"}, c.ids("b1", "b0")},
			{"all of", knowledge.Filters{"lang": "en", "tag": "z"}, c.ids("c0")},
			{"none of", knowledge.Filters{"lang": "en", "tag": "y"}, nil},
			{"empty list", knowledge.Filters{"lang": []any{}}, nil},
			{"missing key", knowledge.Filters{"missing": "x"}, nil},
			{"chunk field", knowledge.Filters{"document_name": "Doc C"}, c.ids("c0")},
			{"document metadata wins", knowledge.Filters{"page": "cover"}, c.ids("a0", "a1")},
			{"injection 1", knowledge.Filters{"lang": `en" || knowledge_id != "`}, nil},
			{"injection 2", knowledge.Filters{"lang": `fr") || (metadata["lang"] == "en`}, nil},
			{"injection 3", knowledge.Filters{"quote": `\" || true || \"`}, nil},
			{"lone backslash", knowledge.Filters{"quote": `\`}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				hits := search(t, s, c.kb, vectorQuery(10, tc.filters))
				assert.Equal(t, tc.want, nilIfEmpty(hitIDs(hits)))
			})
		}
		t.Run("every mode", func(t *testing.T) {
			en := knowledge.Filters{"lang": "en"}
			kw := search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeKeyword, Sparse: map[uint32]float32{1: 1, 3: 1}, TopK: 10, Filters: en})
			assert.Equal(t, c.ids("a0", "a1"), hitIDs(kw))
			hyb := search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeHybrid, Vector: queryVector, Sparse: map[uint32]float32{3: 1}, TopK: 10, Filters: en})
			assert.Equal(t, c.ids("a1", "a0", "c0"), hitIDs(hyb))
		})
		t.Run("rejected", func(t *testing.T) {
			for _, f := range []knowledge.Filters{
				{`lang"] == "en" || metadata["x`: "y"},
				{"a b": "x"},
				{"lang": map[string]any{"$ne": "x"}},
				{"lang": nil},
			} {
				_, err := s.Search(ctxBG, c.kb, vectorQuery(10, f))
				assert.ErrorIs(t, err, knowledge.ErrInvalidFilter, "%v", f)
			}
		})
	})

	t.Run("topK", func(t *testing.T) {
		s := newStore(t)
		c := loaded(t, s)
		assert.Equal(t, c.ids("a0", "a1"), hitIDs(search(t, s, c.kb, vectorQuery(2, nil))))
		assert.Len(t, search(t, s, c.kb, vectorQuery(0, nil)), 5, "0 means the default (10)")
		assert.Equal(t, c.ids("a0"), hitIDs(search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeKeyword, Sparse: map[uint32]float32{1: 1}, TopK: 1})))
		assert.Equal(t, c.ids("a1", "b0", "a0"), hitIDs(search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeHybrid, Vector: queryVector, Sparse: map[uint32]float32{3: 1}, TopK: 3})))
		assert.Len(t, search(t, s, c.kb, vectorQuery(100000, nil)), 5, "capped, not rejected")
		for _, k := range []int{50, 100, 8000, 100000} {
			hits := search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeHybrid, Vector: queryVector, Sparse: map[uint32]float32{3: 1}, TopK: k})
			assert.Equal(t, c.ids("a1", "b0", "a0", "b1", "c0"), hitIDs(hits), "topK %d", k)
		}
	})

	t.Run("knowledge bases are separate", func(t *testing.T) {
		s := newStore(t)
		c := loaded(t, s)
		other := newCorpus("kb_other")
		require.NoError(t, s.Upsert(ctxBG, other.kb, other.chunks[:2], other.dense[:2], other.sparse[:2]))
		assert.Equal(t, c.ids("a0", "a1", "b1", "c0", "b0"), hitIDs(search(t, s, c.kb, vectorQuery(10, nil))))
		hits := search(t, s, other.kb, vectorQuery(10, nil))
		assert.Equal(t, other.ids("a0", "a1"), hitIDs(hits))
		assert.Equal(t, "kb_other", hits[0].KnowledgeID)
	})

	t.Run("many chunks", func(t *testing.T) {
		s := newStore(t)
		const n = 600 // several batches
		doc := knowledge.DocumentID("kb_many", []byte("big"))
		chunks := make([]knowledge.Chunk, n)
		dense := make([][]float32, n)
		sparse := make([]map[uint32]float32, n)
		for i := range chunks {
			chunks[i] = knowledge.Chunk{ID: knowledge.ChunkID(doc, i), DocumentID: doc, Index: i, Text: fmt.Sprint("chunk ", i)}
			dense[i] = unit(1, float32(i+1)/100, 0, 0) // later chunks score lower
			sparse[i] = map[uint32]float32{uint32(i % 7): 1}
		}
		require.NoError(t, s.Upsert(ctxBG, "kb_many", chunks, dense, sparse))
		hits := search(t, s, "kb_many", vectorQuery(5, nil))
		assert.Equal(t, []string{chunks[0].ID, chunks[1].ID, chunks[2].ID, chunks[3].ID, chunks[4].ID}, hitIDs(hits))
		kw := search(t, s, "kb_many", knowledge.Query{Mode: knowledge.ModeKeyword, Sparse: map[uint32]float32{3: 1}, TopK: 1000})
		assert.Len(t, kw, n/7+1) // i%7 == 3 for i < 600
		require.NoError(t, s.DeleteDocument(ctxBG, "kb_many", doc))
		assert.Empty(t, search(t, s, "kb_many", vectorQuery(5, nil)))
	})

	t.Run("invalid requests", func(t *testing.T) {
		s := newStore(t)
		c := newCorpus("kb_invalid")
		assert.ErrorContains(t, s.Upsert(ctxBG, c.kb, c.chunks, c.dense[:2], c.sparse), "dense vectors")
		assert.ErrorContains(t, s.Upsert(ctxBG, c.kb, c.chunks, c.dense, c.sparse[:1]), "sparse vectors")
		assert.ErrorContains(t, s.Upsert(ctxBG, c.kb, c.chunks[:1], [][]float32{{1, 0}}, c.sparse[:1]), "2-dimensional")
		assert.Error(t, s.Upsert(ctxBG, "", c.chunks, c.dense, c.sparse))
		assert.Error(t, s.Upsert(ctxBG, c.kb, []knowledge.Chunk{{DocumentID: "d"}}, c.dense[:1], c.sparse[:1]), "empty chunk id")
		assert.Error(t, s.Upsert(ctxBG, c.kb, c.chunks[:1], c.dense[:1], []map[uint32]float32{{1: float32(math.NaN())}}))
		assert.NoError(t, s.Upsert(ctxBG, c.kb, nil, nil, nil))
		_, err := s.Search(ctxBG, c.kb, knowledge.Query{Mode: knowledge.ModeVector, Vector: []float32{1}})
		assert.ErrorContains(t, err, "1 dimensions")
		_, err = s.Search(ctxBG, c.kb, knowledge.Query{Mode: "fuzzy", Vector: queryVector})
		assert.ErrorContains(t, err, "unknown search mode")
		_, err = s.Search(ctxBG, c.kb, knowledge.Query{Mode: knowledge.ModeHybrid})
		assert.Error(t, err)
		_, err = s.Search(ctxBG, "", vectorQuery(1, nil))
		assert.Error(t, err)
		// An empty collection searches fine.
		assert.Empty(t, search(t, s, c.kb, vectorQuery(3, nil)))
		assert.Empty(t, search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeHybrid, Vector: queryVector, Sparse: map[uint32]float32{1: 1}}))
	})

	t.Run("unreachable", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := lis.Addr().String()
		require.NoError(t, lis.Close())

		s := openStore(t, Options{Address: addr, Timeout: 2 * time.Second})
		start := time.Now()
		_, err = s.Search(ctxBG, "kb", vectorQuery(3, nil))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "milvus at "+addr+" is unreachable")
		assert.Less(t, time.Since(start), 3*time.Second)
		c := newCorpus("kb")
		err = s.Upsert(ctxBG, c.kb, c.chunks, c.dense, c.sparse)
		assert.ErrorContains(t, err, "is unreachable")
		assert.ErrorContains(t, s.DeleteDocument(ctxBG, "kb", "doc"), "is unreachable")
	})

	t.Run("unresponsive", func(t *testing.T) {
		addr := blackhole(t)
		s := openStore(t, Options{Address: addr, Timeout: 500 * time.Millisecond})
		start := time.Now()
		_, err := s.Search(ctxBG, "kb", vectorQuery(3, nil))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "milvus at "+addr+" is unreachable")
		assert.Less(t, time.Since(start), 1500*time.Millisecond, "bounded by the timeout")
	})
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// blackhole accepts TCP connections and never answers.
func blackhole(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = lis.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return lis.Addr().String()
}

// --- behaviour specific to the adapter, checked against the fake

func TestNewIsLazy(t *testing.T) {
	f := startFake(t)
	s := openStore(t, Options{Address: f.addr})
	assert.Zero(t, f.count("HasCollection"), "New does not talk to Milvus")

	_, err := New(ctxBG, Options{Collection: "c", Dimension: 4})
	assert.ErrorContains(t, err, "address")
	_, err = New(ctxBG, Options{Address: f.addr, Collection: "bad-name", Dimension: 4})
	assert.ErrorContains(t, err, "collection name")
	_, err = New(ctxBG, Options{Address: f.addr, Collection: "c", Dimension: 0})
	assert.ErrorContains(t, err, "dimension")

	// The first use creates, indexes and loads the collection, once.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := s.Search(ctxBG, "kb", vectorQuery(3, nil))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, 1, f.count("CreateCollection"))
	assert.Equal(t, 2, f.count("CreateIndex"))
	assert.Equal(t, 1, f.count("LoadCollection"))
	f.mu.Lock()
	coll := f.collections[s.opts.Collection]
	f.mu.Unlock()
	require.NotNil(t, coll)
	assert.True(t, coll.loaded)
	assert.Equal(t, "HNSW", coll.indexes[fieldDense].indexType)
	assert.Equal(t, "SPARSE_INVERTED_INDEX", coll.indexes[fieldSparse].indexType)

	// A second store on the existing collection only checks it.
	s2 := openStore(t, Options{Address: f.addr, Collection: s.opts.Collection})
	_, err = s2.Search(ctxBG, "kb", vectorQuery(3, nil))
	require.NoError(t, err)
	assert.Equal(t, 1, f.count("CreateCollection"))
	assert.Equal(t, 2, f.count("CreateIndex"))
}

func TestExistingCollectionIsIndexedAndLoaded(t *testing.T) {
	f := startFake(t)
	name := uniqueCollection()
	st, err := f.CreateCollection(ctxBG, createRequest(name, testDim))
	require.NoError(t, err)
	require.Zero(t, st.GetErrorCode(), st.GetReason())
	s := openStore(t, Options{Address: f.addr, Collection: name})
	c := newCorpus("kb")
	require.NoError(t, s.Upsert(ctxBG, c.kb, c.chunks, c.dense, c.sparse))
	assert.Len(t, search(t, s, c.kb, vectorQuery(10, nil)), 5)
	assert.Zero(t, f.count("CreateCollection"), "only the one made above, directly")
	assert.Equal(t, 2, f.count("CreateIndex"))
}

func TestDimensionMismatch(t *testing.T) {
	f := startFake(t)
	s := openStore(t, Options{Address: f.addr, Dimension: 4})
	_, err := s.Search(ctxBG, "kb", vectorQuery(1, nil))
	require.NoError(t, err)
	s8 := openStore(t, Options{Address: f.addr, Collection: s.opts.Collection, Dimension: 8, Retries: 2})
	before := f.count("DescribeCollection")
	_, err = s8.Search(ctxBG, "kb", knowledge.Query{Mode: knowledge.ModeVector, Vector: make([]float32, 8)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "4-dimensional vectors but the embedder produces 8")
	assert.Equal(t, before+1, f.count("DescribeCollection"), "not retried")
}

func TestRetriesTransientErrors(t *testing.T) {
	f := startFake(t)
	s := openStore(t, Options{Address: f.addr, Retries: 2})
	c := newCorpus("kb")
	require.NoError(t, s.Upsert(ctxBG, c.kb, c.chunks, c.dense, c.sparse))

	f.fail("Search", codes.Unavailable, codes.DeadlineExceeded)
	hits, err := s.Search(ctxBG, c.kb, vectorQuery(2, nil))
	require.NoError(t, err)
	assert.Equal(t, c.ids("a0", "a1"), hitIDs(hits))
	assert.Equal(t, 3, f.count("Search"), "two retries, and the SDK's own retry is off")

	f.fail("Search", codes.Unavailable, codes.Unavailable, codes.Unavailable)
	_, err = s.Search(ctxBG, c.kb, vectorQuery(2, nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "milvus at "+f.addr+" is unreachable")
	assert.Contains(t, err.Error(), "3 attempts")
	assert.Equal(t, 6, f.count("Search"))

	// Other errors are not retried.
	f.fail("Delete", codes.InvalidArgument)
	err = s.DeleteDocument(ctxBG, c.kb, c.docA)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "unreachable")
	assert.Equal(t, 1, f.count("Delete"))

	// Retries: -1 disables them.
	s0 := openStore(t, Options{Address: f.addr, Collection: s.opts.Collection, Retries: -1})
	_, err = s0.Search(ctxBG, c.kb, vectorQuery(2, nil))
	require.NoError(t, err)
	before := f.count("Search")
	f.fail("Search", codes.Unavailable)
	_, err = s0.Search(ctxBG, c.kb, vectorQuery(2, nil))
	require.Error(t, err)
	assert.Equal(t, before+1, f.count("Search"))
}

func TestSlowMilvusTimesOut(t *testing.T) {
	f := startFake(t)
	s := openStore(t, Options{Address: f.addr, Timeout: 300 * time.Millisecond})
	_, err := s.Search(ctxBG, "kb", vectorQuery(1, nil))
	require.NoError(t, err)
	f.setHang("Search", true)
	start := time.Now()
	_, err = s.Search(ctxBG, "kb", vectorQuery(1, nil))
	require.Error(t, err)
	assert.Less(t, time.Since(start), time.Second)
	assert.Contains(t, err.Error(), "timed out after 300ms", "connected, so not unreachable")

	// The caller's own cancellation is reported as such.
	ctx, cancel := context.WithCancel(ctxBG)
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = s.Search(ctx, "kb", vectorQuery(1, nil))
	assert.ErrorIs(t, err, context.Canceled)
}

func TestOutageAndRecovery(t *testing.T) {
	f := startFake(t)
	s := openStore(t, Options{Address: f.addr, Timeout: 2 * time.Second})
	c := newCorpus("kb")
	require.NoError(t, s.Upsert(ctxBG, c.kb, c.chunks, c.dense, c.sparse))
	f.stop()
	start := time.Now()
	_, err := s.Search(ctxBG, c.kb, vectorQuery(1, nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "milvus at "+f.addr+" is unreachable")
	assert.Less(t, time.Since(start), 3*time.Second)
}

func TestUnreachableAtStartThenUp(t *testing.T) {
	// Reserve a port, start nothing on it, then serve the fake there.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	s := openStore(t, Options{Address: addr, Timeout: time.Second})
	_, err = s.Search(ctxBG, "kb", vectorQuery(1, nil))
	require.ErrorContains(t, err, "is unreachable")

	f := startFakeAt(t, addr)
	require.Eventually(t, func() bool {
		_, err := s.Search(ctxBG, "kb", vectorQuery(1, nil))
		return err == nil
	}, 10*time.Second, 100*time.Millisecond)
	assert.Equal(t, 1, f.count("CreateCollection"))
}

func TestCredentials(t *testing.T) {
	f := startFake(t)
	f.requireAuth("troupe", "s3cret")
	good := openStore(t, Options{Address: f.addr, Username: "troupe", Password: "s3cret"})
	_, err := good.Search(ctxBG, "kb", vectorQuery(1, nil))
	require.NoError(t, err)

	bad := openStore(t, Options{Address: f.addr, Username: "troupe", Password: "wrong"})
	before := f.count("HasCollection")
	_, err = bad.Search(ctxBG, "kb", vectorQuery(1, nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rejected the credentials")
	assert.Equal(t, before+1, f.count("HasCollection"), "not retried")
}

func TestClose(t *testing.T) {
	f := startFake(t)
	s := openStore(t, Options{Address: f.addr})
	_, err := s.Search(ctxBG, "kb", vectorQuery(1, nil))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = s.Search(ctxBG, "kb", vectorQuery(1, nil))
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, s.DeleteDocument(ctxBG, "kb", "d"), ErrClosed)
}

func TestEmptySparseRowsGetAPlaceholder(t *testing.T) {
	f := startFake(t)
	s := openStore(t, Options{Address: f.addr})
	c := newCorpus("kb")
	// The fake, like Milvus 2.4, rejects empty sparse rows; b1 has none.
	require.NoError(t, s.Upsert(ctxBG, c.kb, c.chunks, c.dense, nil))
	f.mu.Lock()
	row := f.collections[s.opts.Collection].rows[c.id("b1")]
	f.mu.Unlock()
	assert.Equal(t, map[uint32]float32{sparseMaxIndex: sparsePlaceholder}, row[fieldSparse])
	// Term 2^32-1, which Milvus rejects, is folded onto 2^32-2.
	require.NoError(t, s.Upsert(ctxBG, c.kb, c.chunks[:1], c.dense[:1], []map[uint32]float32{{math.MaxUint32: 1, sparseMaxIndex: 2}}))
	kw := search(t, s, c.kb, knowledge.Query{Mode: knowledge.ModeKeyword, Sparse: map[uint32]float32{math.MaxUint32: 1}})
	require.NotEmpty(t, kw)
	assert.Equal(t, c.id("a0"), kw[0].ID)
	assert.InDelta(t, 3, kw[0].Score, 1e-6)
}

// startFakeAt serves the fake on a given address.
func startFakeAt(t *testing.T, addr string) *fakeMilvus {
	t.Helper()
	f := startFakeOn(t, func() (net.Listener, error) { return net.Listen("tcp", addr) })
	return f
}
