package bm25

import (
	"hash/fnv"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTermIDIsFNV1a32(t *testing.T) {
	for _, s := range []string{"", "install", "crème", "2024"} {
		h := fnv.New32a()
		h.Write([]byte(s))
		require.Equal(t, h.Sum32(), TermID(s), s)
	}
}

func TestTerms(t *testing.T) {
	cases := map[string][]string{
		"The Quick, brown FOX!":                    {"quick", "brown", "fox"},
		"installing installed installs install":    {"install", "install", "install", "install"},
		"Crème brûlée à la carte":                  {"crem", "brule", "la", "cart"},
		"version 2.10 of utf8 in 2024":             {"version", "2", "10", "utf8", "2024"},
		"don't":                                    {"don"},
		"":                                         {},
		"  ...  ":                                  {},
		"ﬁles file":                                {"fil", "fil"},
		"東京タワー":                                    {"東", "京", "タ", "ワ", "ー"},
		"Straße":                                   {"straß"},
		"hello-world_foo/bar":                      {"hello", "world", "foo", "bar"},
		"the of and to a in is it that":            {},
		"libraries library":                        {"library", "library"},
		"running runs run":                         {"run", "run", "run"},
		"quickly apply supply":                     {"quick", "apply", "supply"},
		"caches cache cached caching":              {"cach", "cach", "cach", "cach"},
		"boxes box matches match classes class":    {"box", "box", "match", "match", "class", "class"},
		"status analysis":                          {"status", "analysis"},
		"copied copies copy":                       {"copy", "copy", "copy"},
		"stopped stopping stops":                   {"stop", "stop", "stop"},
		"configured configuring configure configs": {"configur", "configur", "configur", "config"},
		"need needs":                               {"need", "need"},
		"bring thing":                              {"bring", "thing"},
		"uses use":                                 {"use", "use"},
	}
	for in, want := range cases {
		got := Terms(in)
		if len(want) == 0 {
			require.Empty(t, got, in)
			continue
		}
		require.Equal(t, want, got, in)
	}
}

func TestStemMinimumLength(t *testing.T) {
	// Suffixes are never stripped below three letters.
	for _, w := range []string{"red", "bed", "sing", "ring", "ally", "ties", "axes", "boxes", "added", "add"} {
		require.GreaterOrEqual(t, len(stem(w)), 3, w)
	}
	require.Equal(t, stem("added"), "add")
}

// corpus is three documents of lengths 3, 3 and 5 after normalisation.
var corpus = []string{
	"The quick brown fox",             // quick brown fox
	"Quick quick dogs",                // quick quick dog
	"Lazy dogs sleep soundly tonight", // lazy dog sleep sound tonight
}

func build(t *testing.T) (*Stats, []map[uint32]float32) {
	t.Helper()
	total := 0
	for _, d := range corpus {
		total += len(Terms(d))
	}
	require.Equal(t, 11, total)
	avgdl := float64(total) / float64(len(corpus))
	s := &Stats{}
	var docs []map[uint32]float32
	for _, d := range corpus {
		w, dl := Doc(d, avgdl)
		s.Add(w, dl)
		docs = append(docs, w)
	}
	return s, docs
}

func dot(q, d map[uint32]float32) float64 {
	var s float64
	for id, w := range q {
		s += float64(w) * float64(d[id])
	}
	return s
}

func TestHandComputedScores(t *testing.T) {
	s, docs := build(t)
	require.Equal(t, 3, s.N)
	require.Equal(t, 11, s.TotalLen)
	require.InDelta(t, 11.0/3, s.AvgDL(), 1e-12)
	require.Equal(t, 2, s.DF[TermID("quick")])
	require.Equal(t, 2, s.DF[TermID("dog")])
	require.Equal(t, 1, s.DF[TermID("fox")])
	require.Len(t, s.DF, 8)

	// Document side with avgdl = 11/3: norm = k1·(1−b+b·dl/avgdl).
	// dl=3: tf=1 → 2.2/(1+1.036364) = 1.080357; tf=2 → 4.4/3.036364 = 1.449102.
	// dl=5: tf=1 → 2.2/(1+1.527273) = 0.870504.
	require.InDelta(t, 1.080357, docs[0][TermID("quick")], 1e-6)
	require.InDelta(t, 1.449102, docs[1][TermID("quick")], 1e-6)
	require.InDelta(t, 1.080357, docs[1][TermID("dog")], 1e-6)
	require.InDelta(t, 0.870504, docs[2][TermID("dog")], 1e-6)

	// IDF: df=2 → ln(1+1.5/2.5) = 0.470004; df=1 → ln(1+2.5/1.5) = 0.980829;
	// unseen → ln(1+3.5/0.5) = ln 8.
	require.InDelta(t, 0.470004, s.IDF(TermID("quick")), 1e-6)
	require.InDelta(t, 0.980829, s.IDF(TermID("fox")), 1e-6)
	require.InDelta(t, math.Log(8), s.IDF(TermID("zebra")), 1e-12)

	q := s.Query("quick dog quick") // repeated terms count once
	require.Len(t, q, 2)
	require.InDelta(t, 0.470004, q[TermID("quick")], 1e-6)
	require.InDelta(t, 0.507772, dot(q, docs[0]), 1e-5) // 0.470004·1.080357
	require.InDelta(t, 1.188855, dot(q, docs[1]), 1e-5) // 0.470004·(1.449102+1.080357)
	require.InDelta(t, 0.409140, dot(q, docs[2]), 1e-5) // 0.470004·0.870504

	q = s.Query("Lazy foxes")
	require.InDelta(t, 1.059646, dot(q, docs[0]), 1e-5) // fox: 0.980829·1.080357
	require.InDelta(t, 0.0, dot(q, docs[1]), 1e-12)
	require.InDelta(t, 0.853815, dot(q, docs[2]), 1e-5) // lazy: 0.980829·0.870504
}

func TestDocWithoutAverage(t *testing.T) {
	w, dl := Doc("alpha beta beta", 0)
	require.Equal(t, 3, dl)
	// avgdl 0 means dl: norm = k1 = 1.2.
	require.InDelta(t, 2.2/2.2, w[TermID("alpha")], 1e-6)
	require.InDelta(t, 4.4/3.2, w[TermID("beta")], 1e-6)
	w, dl = Doc("the of and", 5)
	require.Zero(t, dl)
	require.Empty(t, w)
}

func TestStatsAddRemove(t *testing.T) {
	s, docs := build(t)
	before := s.Clone()
	w, dl := Doc("a new document about foxes", s.AvgDL())
	s.Add(w, dl)
	require.Equal(t, 4, s.N)
	require.Equal(t, 2, s.DF[TermID("fox")])
	s.Remove(w, dl)
	require.Equal(t, before, *s)

	ids := SortedIDs(docs[0])
	s.RemoveTerms(ids, 3)
	require.Equal(t, 2, s.N)
	require.Equal(t, 8, s.TotalLen)
	require.NotContains(t, s.DF, TermID("fox"))
	require.Equal(t, 1, s.DF[TermID("quick")])
	s.AddTerms(ids, 3)
	require.Equal(t, before, *s)

	var empty Stats
	require.Zero(t, empty.AvgDL())
	empty.Remove(w, dl) // never negative
	require.Zero(t, empty.N)
	require.Zero(t, empty.TotalLen)
	c := empty.Clone()
	require.NotNil(t, c.DF)
}

// TestStatsMergeSubtract checks that a document's share of the statistics,
// counted apart, comes out exactly as it went in, and that taking out more
// than was counted (a share saved before shares were recorded) stops at 0.
func TestStatsMergeSubtract(t *testing.T) {
	s, _ := build(t)
	before := s.Clone()
	var doc Stats
	for _, text := range []string{"a new document about foxes", "and a second chunk about dogs and foxes"} {
		w, dl := Doc(text, s.AvgDL())
		doc.Add(w, dl)
	}
	s.Merge(&doc)
	require.Equal(t, before.N+2, s.N)
	require.Equal(t, before.DF[TermID("fox")]+2, s.DF[TermID("fox")])
	s.Subtract(&doc)
	require.Equal(t, before, *s)

	var small Stats
	small.Subtract(&doc)
	require.Zero(t, small.N)
	require.Zero(t, small.TotalLen)
	require.Empty(t, small.DF)
	s.Merge(nil)
	s.Subtract(nil)
	require.Equal(t, before, *s)
}
