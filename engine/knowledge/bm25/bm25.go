// Package bm25 is the keyword scoring shared by every vector store.
//
// Text is normalised into terms (Terms) and each term is hashed to a uint32 id
// (TermID, FNV-1a 32), so no dictionary is needed and the same ids can be sent
// to Milvus as sparse vectors. BM25 is split into two sparse vectors whose dot
// product is the score:
//
//	Doc(d)[t]   = tf·(k1+1) / (tf + k1·(1 − b + b·dl/avgdl))   document side, stored with the chunk
//	Query(q)[t] = ln(1 + (N − df + 0.5)/(df + 0.5))            query side, computed at search time
//	score(q, d) = Σ_t Query(q)[t] · Doc(d)[t]
//
// which is exactly Okapi BM25 with k1 = 1.2 and b = 0.75. The document side
// uses the average length known when the chunk was ingested rather than the
// current one: an accepted approximation (Milvus does the same), since avgdl
// moves little once a corpus has a few hundred chunks.
package bm25

import (
	"maps"
	"math"
	"slices"
)

// BM25 parameters.
const (
	K1 = 1.2
	B  = 0.75
)

// TermID is the id of a normalised term: its FNV-1a 32-bit hash.
func TermID(term string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(term); i++ {
		h ^= uint32(term[i])
		h *= 16777619
	}
	return h
}

// Doc returns a chunk's document-side BM25 weights, one per distinct term:
// tf·(k1+1)/(tf + k1·(1−b+b·dl/avgdl)), and its length dl in terms. avgdl is
// the knowledge base's average chunk length at ingestion time; 0 (an empty
// corpus) means dl itself, so the first chunk is not length-penalised.
func Doc(text string, avgdl float64) (weights map[uint32]float32, dl int) {
	terms := Terms(text)
	dl = len(terms)
	if dl == 0 {
		return map[uint32]float32{}, 0
	}
	tf := make(map[uint32]int, len(terms))
	for _, t := range terms {
		tf[TermID(t)]++
	}
	if avgdl <= 0 {
		avgdl = float64(dl)
	}
	norm := K1 * (1 - B + B*float64(dl)/avgdl)
	weights = make(map[uint32]float32, len(tf))
	for id, n := range tf {
		f := float64(n)
		weights[id] = float32(f * (K1 + 1) / (f + norm))
	}
	return weights, dl
}

// Stats are the corpus statistics of one knowledge base: its chunk count, the
// total length of its chunks in terms and the document frequency of each term
// id. Stores keep them beside the chunks (the embedded store rebuilds them from
// its persisted records at start) and cache them in memory.
//
// A Stats value is not safe for concurrent modification.
type Stats struct {
	N        int
	TotalLen int
	DF       map[uint32]int
}

// AvgDL is the average chunk length, 0 for an empty corpus.
func (s *Stats) AvgDL() float64 {
	if s.N <= 0 {
		return 0
	}
	return float64(s.TotalLen) / float64(s.N)
}

// IDF is the inverse document frequency of a term id:
// ln(1 + (N − df + 0.5)/(df + 0.5)), always positive.
func (s *Stats) IDF(id uint32) float64 {
	df := float64(s.DF[id])
	n := float64(s.N)
	return math.Log(1 + (n-df+0.5)/(df+0.5))
}

// Query returns the query-side weights of text: the IDF of each distinct
// query term (a term repeated in the query counts once). Its dot product with
// a chunk's Doc weights is the chunk's BM25 score.
func (s *Stats) Query(text string) map[uint32]float32 {
	terms := Terms(text)
	q := make(map[uint32]float32, len(terms))
	for _, t := range terms {
		id := TermID(t)
		if _, ok := q[id]; !ok {
			q[id] = float32(s.IDF(id))
		}
	}
	return q
}

// Add counts a chunk with document weights (from Doc; only the keys matter)
// and length dl.
func (s *Stats) Add(weights map[uint32]float32, dl int) {
	if s.DF == nil {
		s.DF = make(map[uint32]int, len(weights))
	}
	s.N++
	s.TotalLen += dl
	for id := range weights {
		s.DF[id]++
	}
}

// Remove undoes Add for a chunk leaving the corpus.
func (s *Stats) Remove(weights map[uint32]float32, dl int) {
	s.removeChunk(dl)
	for id := range weights {
		s.decDF(id)
	}
}

// AddTerms is Add given the chunk's distinct term ids.
func (s *Stats) AddTerms(ids []uint32, dl int) {
	if s.DF == nil {
		s.DF = make(map[uint32]int, len(ids))
	}
	s.N++
	s.TotalLen += dl
	for _, id := range ids {
		s.DF[id]++
	}
}

// RemoveTerms is Remove given the chunk's distinct term ids.
func (s *Stats) RemoveTerms(ids []uint32, dl int) {
	s.removeChunk(dl)
	for _, id := range ids {
		s.decDF(id)
	}
}

func (s *Stats) removeChunk(dl int) {
	s.N = max(s.N-1, 0)
	s.TotalLen = max(s.TotalLen-dl, 0)
}

func (s *Stats) decDF(id uint32) {
	switch n := s.DF[id]; {
	case n > 1:
		s.DF[id] = n - 1
	case n == 1:
		delete(s.DF, id)
	}
}

// Merge adds the chunks counted in o (another part of the corpus, such as
// one document's chunks) to s.
func (s *Stats) Merge(o *Stats) {
	if o == nil {
		return
	}
	if s.DF == nil {
		s.DF = make(map[uint32]int, len(o.DF))
	}
	s.N += o.N
	s.TotalLen += o.TotalLen
	for id, n := range o.DF {
		s.DF[id] += n
	}
}

// Subtract undoes Merge: the chunks counted in o leave the corpus. Counts
// never go below zero, so statistics saved before a part was recorded (which
// never counted it) stay valid.
func (s *Stats) Subtract(o *Stats) {
	if o == nil {
		return
	}
	s.N = max(s.N-o.N, 0)
	s.TotalLen = max(s.TotalLen-o.TotalLen, 0)
	for id, n := range o.DF {
		if left := s.DF[id] - n; left > 0 {
			s.DF[id] = left
		} else {
			delete(s.DF, id)
		}
	}
}

// Clone returns a deep copy.
func (s *Stats) Clone() Stats {
	c := Stats{N: s.N, TotalLen: s.TotalLen, DF: maps.Clone(s.DF)}
	if c.DF == nil {
		c.DF = map[uint32]int{}
	}
	return c
}

// SortedIDs returns the keys of a sparse vector in increasing order, for
// deterministic iteration.
func SortedIDs(v map[uint32]float32) []uint32 {
	return slices.Sorted(maps.Keys(v))
}
