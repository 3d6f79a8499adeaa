package knowledge

import "math"

// Scores a person can read. Every search mode reports a score from 0 to 1
// whose meaning does not depend on the corpus or on the other hits, so a
// min_score cut-off means the same for every query:
//
//   - vector: the cosine similarity of the query and chunk embeddings,
//     negative values (pointing away from the query) clamped to 0. 1 is the
//     same direction; unrelated texts score near 0 with the local embedder
//     and typically 0.1 to 0.3 with embedding models.
//   - keyword: the chunk's BM25 score divided by the query's IDF mass (the sum
//     of its terms' IDF weights), capped at 1: the rarity-weighted share of
//     the query's terms the chunk contains. A chunk of average length that
//     contains every query term once scores 1; one containing only the terms
//     carrying half of the query's IDF scores about 0.5.
//   - hybrid: HybridVectorWeight·vector + (1 − HybridVectorWeight)·keyword,
//     both as above, computed for every candidate of either list.
//
// Ranking follows the reported score in every mode, except that keyword
// search ranks by the raw BM25 score, so chunks capped at 1 keep their
// order.

// HybridVectorWeight is the weight of the vector score in the hybrid score.
// An even split measured as well as reciprocal rank fusion on the labelled
// retrieval sets (see kb's relevance tests) with the local embedder.
const HybridVectorWeight = 0.5

// VectorScore maps a cosine similarity to the 0–1 vector score.
func VectorScore(cosine float64) float64 {
	return clamp01(cosine)
}

// KeywordScore maps a BM25 score to the 0–1 keyword score, given the IDF
// mass of the query (IDFMass of its query weights).
func KeywordScore(bm25, idfMass float64) float64 {
	if idfMass <= 0 || bm25 <= 0 {
		return 0
	}
	return clamp01(bm25 / idfMass)
}

// HybridScore combines a cosine similarity and a BM25 score into the 0–1
// hybrid score.
func HybridScore(cosine, bm25, idfMass float64) float64 {
	return HybridVectorWeight*VectorScore(cosine) + (1-HybridVectorWeight)*KeywordScore(bm25, idfMass)
}

// IDFMass is the sum of a query's BM25 weights (the IDF of each distinct
// term): the BM25 score of a chunk of average length containing every term
// once.
func IDFMass(sparse map[uint32]float32) float64 {
	var m float64
	for _, w := range sparse {
		m += float64(w)
	}
	return m
}

// ScoreHits replaces the raw scores of a vector (cosine) or keyword (BM25)
// search with the readable ones, keeping the order.
func ScoreHits(mode string, hits []Hit, idfMass float64) {
	for i := range hits {
		switch mode {
		case ModeVector:
			hits[i].Score = VectorScore(hits[i].Score)
		case ModeKeyword:
			hits[i].Score = KeywordScore(hits[i].Score, idfMass)
		}
	}
}

// FuseScores is hybrid fusion for stores that return a vector and a keyword
// list with raw scores (cosine, BM25) and cannot score every candidate on
// both sides: a candidate missing from a list counts 0 on that side, a lower
// bound. It returns the best topK by HybridScore.
func FuseScores(topK int, idfMass float64, vector, keyword []Hit) []Hit {
	type acc struct {
		hit       Hit
		cos, bm25 float64
	}
	byID := map[string]*acc{}
	var order []string
	add := func(h Hit) *acc {
		a, ok := byID[h.ID]
		if !ok {
			a = &acc{hit: h}
			byID[h.ID] = a
			order = append(order, h.ID)
		}
		return a
	}
	for _, h := range vector {
		add(h).cos = h.Score
	}
	for _, h := range keyword {
		add(h).bm25 = h.Score
	}
	out := make([]Hit, 0, len(order))
	for _, id := range order {
		a := byID[id]
		a.hit.Score = HybridScore(a.cos, a.bm25, idfMass)
		out = append(out, a.hit)
	}
	sortHits(out)
	if topK > 0 && len(out) > topK {
		out = out[:topK]
	}
	return out
}

// Merge combines the hits of several searches whose scores are readable
// (and so comparable) into one list of the best topK, best first.
func Merge(topK int, lists ...[]Hit) []Hit {
	var out []Hit
	for _, l := range lists {
		out = append(out, l...)
	}
	sortHits(out)
	if topK > 0 && len(out) > topK {
		out = out[:topK]
	}
	return out
}

func clamp01(v float64) float64 {
	if math.IsNaN(v) || v <= 0 {
		return 0
	}
	return min(v, 1)
}
