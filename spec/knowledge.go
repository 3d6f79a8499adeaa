package spec

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Knowledge is a searchable collection of documents: its sources are ingested when
// the spec loads and when they change; more arrive through uploads.
type Knowledge struct {
	Meta `yaml:",inline"`

	Sources  []string `yaml:"sources" doc:"File globs relative to this YAML file, inside the spec folder or a read root (--read-roots); or http(s) URLs."`
	Chunking Chunking `yaml:"chunking" doc:"How documents are split into chunks."`
	Embedder string   `yaml:"embedder" doc:"local (feature hashing, no weights) or provider/model for an embeddings API (default local)."`
	Store    Store    `yaml:"store" doc:"Where vectors live: embedded (default) or milvus."`
	Search   Search   `yaml:"search" doc:"How agents search this knowledge."`
	Rerank   *Rerank  `yaml:"rerank" doc:"Reorders the best hits with a reranking model (Cohere, Jina or TEI /rerank wire); optional."`

	roots []string // where file sources may resolve: see ReadRoots
}

// ReadRoots returns the folders the knowledge base's file sources must lie
// in, after resolving symlinks: the spec folder its file was loaded from and
// the configured read roots (for a document not loaded by a Loader, its
// file's folder).
func (k *Knowledge) ReadRoots() []string {
	if len(k.roots) == 0 {
		return []string{filepath.Dir(k.Pos().File)}
	}
	return k.roots
}

// Chunking configures how documents are split.
type Chunking struct {
	Strategy string `yaml:"strategy" spec:"short" enum:"fixed,recursive,markdown" doc:"fixed, recursive (paragraph, sentence, word boundaries) or markdown (keeps heading paths); default recursive."`
	Size     int    `yaml:"size" doc:"Target chunk size in tokens, 32 to 8192 (default 512)."`
	Overlap  int    `yaml:"overlap" doc:"Tokens shared by consecutive chunks (default 64)."`
}

// Store selects the vector store of a knowledge base.
type Store struct {
	Type       string `yaml:"type" spec:"short" enum:"embedded,milvus" doc:"embedded (in-process, persisted in the database) or milvus."`
	Address    string `yaml:"address" doc:"milvus: host:port of the Milvus server."`
	Collection string `yaml:"collection" doc:"milvus: collection name (default troupe_<knowledge name>)."`
}

// Search configures retrieval.
type Search struct {
	Mode string `yaml:"mode" spec:"short" enum:"vector,keyword,hybrid" doc:"vector, keyword (BM25) or hybrid (both, scored by the mean of their 0–1 scores); default hybrid."`
	TopK int    `yaml:"top_k" doc:"Results returned per search (default 5)."`
	// MinScore is a pointer so that 0 (keep everything) can be told from
	// unset, should the default ever change.
	MinScore *float64 `yaml:"min_score" doc:"Hits scoring below this (0 to 1) are dropped instead of filling top_k; default 0. Scores: vector = cosine similarity, keyword = share of the query's IDF-weighted terms found, hybrid = their mean, rerank = the reranker's relevance."`
}

// Rerank configures the reranking of a knowledge base's hits.
type Rerank struct {
	Model      string   `yaml:"model" spec:"required" doc:"Name of a Model document whose base_url serves POST <base_url>/rerank (Cohere, Jina, TEI); its model, api_key and headers are sent."`
	Timeout    Duration `yaml:"timeout" doc:"Limit for one rerank request (default 2s); on timeout or error the hits keep their search order."`
	Candidates int      `yaml:"candidates" doc:"Hits fetched and sent to the reranker before the best top_k are kept (default max(3·top_k, 20), at most 100)."`

	model *Model // resolved when the set is validated
}

// ModelSpec is the Model document Model names, as loaded with this
// knowledge base (nil before validation or when it is unknown).
func (r *Rerank) ModelSpec() *Model { return r.model }

// Rerank defaults.
const (
	DefaultRerankTimeout = 2 * time.Second
	MaxRerankCandidates  = 100
)

// Knowledge defaults.
const (
	DefaultChunkSize    = 512
	DefaultChunkOverlap = 64
	DefaultTopK         = 5
)

// Chunk size limits, in tokens. They apply to specs and to per-upload
// overrides alike: a size of 1 turns a 1 MB text into some 180,000 chunks
// (gigabytes of memory and a slow restart), and no embedding model takes
// more than a few thousand tokens at once.
const (
	MinChunkSize = 32
	MaxChunkSize = 8192
)

// CheckChunking reports what is wrong with a chunk size and overlap, or
// nil; spec validation and the upload API share it so both state the same
// rule.
func CheckChunking(size, overlap int) (sizeErr, overlapErr error) {
	if size < MinChunkSize || size > MaxChunkSize {
		sizeErr = fmt.Errorf("chunk size %d is out of range: use %d to %d tokens", size, MinChunkSize, MaxChunkSize)
	}
	switch {
	case overlap < 0:
		overlapErr = fmt.Errorf("chunk overlap %d must not be negative", overlap)
	case overlap >= size:
		overlapErr = fmt.Errorf("overlap %d must be smaller than size %d", overlap, size)
	}
	return sizeErr, overlapErr
}

func (k *Knowledge) applyDefaults() {
	if k.Chunking.Strategy == "" {
		k.Chunking.Strategy = "recursive"
	}
	if k.Chunking.Size == 0 {
		k.Chunking.Size = DefaultChunkSize
	}
	if k.Chunking.Overlap == 0 && k.Chunking.Size > DefaultChunkOverlap*2 {
		k.Chunking.Overlap = DefaultChunkOverlap
	}
	if k.Embedder == "" {
		k.Embedder = "local"
	}
	if k.Store.Type == "" {
		k.Store.Type = "embedded"
	}
	if k.Store.Type == "milvus" && k.Store.Collection == "" {
		k.Store.Collection = "troupe_" + strings.ReplaceAll(k.Name, "-", "_")
	}
	if k.Search.Mode == "" {
		k.Search.Mode = "hybrid"
	}
	if k.Search.TopK == 0 {
		k.Search.TopK = DefaultTopK
	}
	if r := k.Rerank; r != nil {
		if r.Timeout == 0 {
			r.Timeout = Duration(DefaultRerankTimeout)
		}
		if r.Candidates == 0 {
			r.Candidates = min(max(3*k.Search.TopK, 20), MaxRerankCandidates)
		}
	}
}

// sourceWithinRoots reports whether a file source pattern stays, as written,
// inside the read roots: an absolute pattern or one climbing out with ..
// would ingest files of the host. Symlinks are checked when the sources are
// read.
func (k *Knowledge) sourceWithinRoots(pattern string) bool {
	target := pattern
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(k.Pos().File), target)
	}
	target, err := filepath.Abs(target)
	if err != nil {
		return false
	}
	for _, root := range k.ReadRoots() {
		if r, err := filepath.Abs(root); err == nil && contains(r, target) {
			return true
		}
	}
	return false
}

func (k *Knowledge) validate(v *validator) {
	p := k.Path()
	for i, s := range k.Sources {
		sp := indexPath(p+".sources", i)
		switch {
		case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
			v.url(sp, s)
		case s == "":
			v.errorf(sp, "empty source: write a file glob or a URL")
		default:
			if _, err := filepath.Match(s, ""); err != nil {
				v.errorf(sp, "invalid glob %q: %v", v.display(sp, s), err)
			} else if !k.sourceWithinRoots(s) {
				v.errorf(sp, "source %q reaches outside the spec folder: keep sources inside it, or add their folder to the read roots (--read-roots, TROUPE_READ_ROOTS)", v.display(sp, s))
			}
		}
	}
	c := k.Chunking
	sizeErr, overlapErr := CheckChunking(c.Size, c.Overlap)
	if sizeErr != nil {
		v.errorf(p+".chunking.size", "%v", sizeErr)
	}
	if overlapErr != nil {
		v.errorf(p+".chunking.overlap", "%v", overlapErr)
	}
	if k.Embedder != "local" {
		if prov, model, ok := SplitModelRef(k.Embedder); !ok || model == "" || (prov != "openai" && prov != "ollama") {
			v.errorf(p+".embedder", "invalid embedder %q: use local or openai/<model> (ollama/<model> for Ollama)", v.display(p+".embedder", k.Embedder))
		}
	}
	switch k.Store.Type {
	case "milvus":
		if k.Store.Address == "" {
			v.errorf(p+".store", "missing required field \"address\" for store milvus")
		}
	case "embedded":
		if k.Store.Address != "" {
			v.errorf(p+".store.address", "address is only valid for store milvus")
		}
	}
	v.positive(p+".search.top_k", k.Search.TopK)
	if k.Search.TopK > 100 {
		v.errorf(p+".search.top_k", "top_k %d is too large: at most 100", k.Search.TopK)
	}
	if m := k.Search.MinScore; m != nil && !(*m >= 0 && *m <= 1) {
		v.errorf(p+".search.min_score", "min_score %g is out of range: scores run from 0 to 1", *m)
	}
	if r := k.Rerank; r != nil {
		rp := p + ".rerank"
		if r.Model != "" {
			v.ref(rp+".model", KindModel, r.Model)
			m, _ := v.set.lookup(KindModel, r.Model).(*Model)
			// Resolved here, where the set is at hand, so the knowledge
			// service needs no access to the snapshot's models.
			r.model = m
			if m != nil && m.BaseURL == "" {
				v.errorf(rp+".model", "model %q has no base_url: a reranker is reached at <base_url>/rerank (Cohere https://api.cohere.com/v2, Jina https://api.jina.ai/v1, TEI http://host:port)", r.Model)
			}
		}
		if r.Timeout < 0 {
			v.errorf(rp+".timeout", "timeout must be positive")
		}
		if r.Candidates < 0 || r.Candidates > MaxRerankCandidates {
			v.errorf(rp+".candidates", "candidates %d is out of range: 1 to %d", r.Candidates, MaxRerankCandidates)
		}
	}
}
