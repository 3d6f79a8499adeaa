package embedded

import (
	"math"
	"slices"
	"sync"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

// cand is a scored slot.
type cand struct {
	slot  int32
	score float32
}

// topK keeps the k best candidates in a min-heap (the worst at the root).
type topK struct {
	x *index
	k int
	h []cand
}

// worse reports whether a ranks below b.
func (t *topK) worse(a, b cand) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return t.x.after(a.slot, b.slot)
}

// full lets scan loops skip the call for candidates that cannot enter.
func (t *topK) full() bool { return len(t.h) == t.k }

func (t *topK) offer(c cand) {
	h := t.h
	if len(h) < t.k {
		h = append(h, c)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !t.worse(h[i], h[p]) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
		t.h = h
		return
	}
	if !t.worse(h[0], c) {
		return
	}
	h[0] = c
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(h) && t.worse(h[l], h[m]) {
			m = l
		}
		if r := l + 1; r < len(h) && t.worse(h[r], h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// sorted returns the candidates best first.
func (t *topK) sorted() []cand {
	slices.SortFunc(t.h, func(a, b cand) int {
		switch {
		case t.worse(b, a):
			return -1
		case t.worse(a, b):
			return 1
		}
		return 0
	})
	return t.h
}

// filter is a compiled knowledge.Filters: whether each metadata entry
// matches. A nil filter matches everything.
type filter []bool

func (x *index) compileFilter(f knowledge.Filters, buf []bool) filter {
	if len(f) == 0 {
		return nil
	}
	ok := slices.Grow(buf[:0], len(x.metas))[:len(x.metas)]
	if ok == nil {
		// No chunk has metadata, so none matches: an empty filter, never
		// the nil one that matches everything.
		ok = []bool{}
	}
	for i, m := range x.metas {
		ok[i] = match(f, m)
	}
	return ok
}

// match is f.Match, treating a panic (comparing uncomparable values, such as
// lists inside lists) as no match.
func match(f knowledge.Filters, m map[string]any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return f.Match(m)
}

// match is the cheap per-slot check: tombstone, then metadata.
func (x *index) match(f filter, s int) bool {
	if x.ndead > 0 && x.isDead(s) {
		return false
	}
	if f == nil {
		return true
	}
	m := x.meta[s]
	return m >= 0 && f[m]
}

// scratch is per-search working memory, pooled: keyword score accumulators
// indexed by slot, with an epoch mark so they need no clearing.
type scratch struct {
	acc     []float32
	mark    []uint32
	epoch   uint32
	touched []int32
	filter  []bool
	heap    []cand // keyword candidates
	vheap   []cand // vector candidates
	lows    []float32
	cands   []cand
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (sc *scratch) begin(n int) {
	if len(sc.mark) < n {
		n = max(n, 2*len(sc.mark))
		sc.acc, sc.mark, sc.epoch = make([]float32, n), make([]uint32, n), 0
	}
	sc.epoch++
	if sc.epoch == 0 {
		clear(sc.mark)
		sc.epoch = 1
	}
	sc.touched = sc.touched[:0]
}

// vector returns the k nearest slots to q by inner product: an exact scan of
// the matching slots with a bounded heap.
func (x *index) vector(q []float32, k int, f filter, sc *scratch) []cand {
	if x.quant {
		return x.vectorCodes(q, k, f, sc)
	}
	t := topK{x: x, k: k, h: sc.vheap[:0]}
	defer func() { sc.vheap = t.h }()
	d, n := x.dim, len(x.ids)
	q = q[:d]
	if f == nil && x.ndead == 0 {
		for s := range n {
			score := dot(q, x.vecs[s*d:s*d+d])
			if t.full() && score < t.h[0].score {
				continue
			}
			t.offer(cand{int32(s), score})
		}
		return t.sorted()
	}
	for s := range n {
		if !x.match(f, s) {
			continue
		}
		score := dot(q, x.vecs[s*d:s*d+d])
		if t.full() && score < t.h[0].score {
			continue
		}
		t.offer(cand{int32(s), score})
	}
	return t.sorted()
}

// keyword returns the k best slots by BM25: the dot product of the query's
// IDF weights with the chunks' document weights, accumulated over the query
// terms' postings only. Terms are visited in id order so that scores are
// bit-for-bit reproducible.
func (x *index) keyword(q map[uint32]float32, k int, f filter, sc *scratch) []cand {
	sc.begin(len(x.ids))
	acc, mark, epoch := sc.acc, sc.mark, sc.epoch
	for _, t := range bm25.SortedIDs(q) {
		qw := q[t]
		for _, p := range x.post[t] {
			if mark[p.slot] != epoch {
				mark[p.slot] = epoch
				acc[p.slot] = 0
				sc.touched = append(sc.touched, p.slot)
			}
			acc[p.slot] += qw * p.w
		}
	}
	top := topK{x: x, k: k, h: sc.heap[:0]}
	for _, s := range sc.touched {
		score := acc[s]
		if score <= 0 || (top.full() && score < top.h[0].score) || !x.match(f, int(s)) {
			continue
		}
		top.offer(cand{s, score})
	}
	sc.heap = top.h
	return top.sorted()
}

// hybrid returns the k best of the union of a vector and a keyword
// candidate list by knowledge.HybridScore, each candidate scored exactly on
// both sides: its cosine from its vector, its BM25 score from the keyword
// accumulators (which hold every matching slot's score, not only the best
// n). It runs right after keyword, whose accumulators it reads.
func (x *index) hybrid(q []float32, vc, kc []cand, k int, idfMass float64, sc *scratch) []cand {
	d := x.dim
	q = q[:d]
	all := make([]cand, 0, len(vc)+len(kc))
	all = append(all, vc...)
	all = append(all, kc...)
	slices.SortFunc(all, func(a, b cand) int { return int(a.slot) - int(b.slot) })
	t := topK{x: x, k: k, h: make([]cand, 0, k)}
	for i, c := range all {
		if i > 0 && all[i-1].slot == c.slot {
			continue
		}
		s := int(c.slot)
		var bm float64
		if sc.mark[s] == sc.epoch {
			bm = float64(sc.acc[s])
		}
		cos := float64(dot(q, x.vecs[s*d:s*d+d]))
		t.offer(cand{c.slot, float32(knowledge.HybridScore(cos, bm, idfMass))})
	}
	return t.sorted()
}

func (x *index) hits(knowledgeID string, cs []cand) []knowledge.Hit {
	out := make([]knowledge.Hit, len(cs))
	for i, c := range cs {
		out[i] = x.hit(knowledgeID, c.slot, float64(c.score))
	}
	return out
}

// vectorCodes is vector with a first pass over the int8 codes. A slot's
// approximate score a = scale·(q·codes) is within e = scale·‖q‖₁·(½ + δ) of
// its float32 score (½ for the rounding of the codes, δ for float32
// accumulation in both kernels), so its float32 score lies in [a−e, a+e].
// The k-th best lower bound T is a floor under the k-th best float32 score;
// only slots whose upper bound reaches T are rescored with float32. The
// result is the same as scanning the float32 vectors, at a quarter of the
// memory traffic, and typically a few dozen rescored slots at 100k.
func (x *index) vectorCodes(q []float32, k int, f filter, sc *scratch) []cand {
	d, n := x.dim, len(x.ids)
	q = q[:d]
	var l1 float32
	for _, v := range q {
		l1 += float32(math.Abs(float64(v)))
	}
	// δ bounds float32 summation error over d products of magnitude up to
	// 127·|q_i| in each kernel; the factor covers the rounding of a and e.
	errPerScale := l1 * (0.5 + 2*127*float32(d)/(1<<24)) * 1.0001
	lows, cands := sc.lows[:0], sc.cands[:0]
	floor := float32(math.Inf(-1))
	for s := range n {
		if !x.match(f, s) {
			continue
		}
		scale := x.scales[s]
		a := scale * dotCodes(q, x.codes[s*d:s*d+d])
		e := scale * errPerScale
		if lo := a - e; len(lows) < k {
			lows = pushLow(lows, lo)
			if len(lows) == k {
				floor = lows[0]
			}
		} else if lo > floor {
			lows[0] = lo
			siftLow(lows)
			floor = lows[0]
		}
		if hi := a + e; hi >= floor {
			cands = append(cands, cand{int32(s), hi})
		}
	}
	t := topK{x: x, k: k, h: sc.vheap[:0]}
	for _, c := range cands {
		if c.score < floor {
			continue
		}
		score := dot(q, x.vecs[int(c.slot)*d:int(c.slot)*d+d])
		if t.full() && score < t.h[0].score {
			continue
		}
		t.offer(cand{c.slot, score})
	}
	sc.lows, sc.cands, sc.vheap = lows, cands, t.h
	return t.sorted()
}

// pushLow adds v to a float min-heap.
func pushLow(h []float32, v float32) []float32 {
	h = append(h, v)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

// siftLow restores a float min-heap after its root grew.
func siftLow(h []float32) {
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(h) && h[l] < h[m] {
			m = l
		}
		if r := l + 1; r < len(h) && h[r] < h[m] {
			m = r
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
