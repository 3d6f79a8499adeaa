// Package embed turns texts into dense vectors for knowledge retrieval.
//
// Two knowledge.Embedder implementations live here:
//
//   - Local needs no model weights and no network: it hashes normalized words,
//     word pairs and character n-grams into a fixed number of dimensions
//     (feature hashing). It captures lexical and morphological overlap, not
//     meaning, and is fast enough to embed while ingesting.
//   - OpenAI speaks the OpenAI embeddings wire format, which OpenAI itself,
//     Azure, vLLM, LM Studio, TEI and most other model servers accept, or
//     Ollama's native /api/embed (WireOllama). Its retries and error classes
//     are the chat providers' (engine/model).
//
// Both return L2-normalised vectors, so the dot product of two vectors is
// their cosine similarity. The one exception is a text with nothing to embed
// (empty, or no letters or digits for Local; empty or blank for OpenAI): it
// gets the zero vector, which scores 0 against everything.
package embed

import "math"

// normalize scales v to unit L2 norm in place, accumulating in float64 so the
// result does not depend on the magnitude of the components. A zero vector is
// left as it is.
func normalize(v []float32) {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return
	}
	inv := 1 / math.Sqrt(sum)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
}
