package spec

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Knowledge is a searchable collection of documents: its sources are ingested when
// the spec loads and when they change; more arrive through uploads.
type Knowledge struct {
	Meta `yaml:",inline"`

	Sources      []string `yaml:"sources" doc:"File globs relative to this YAML file, inside the spec folder or a read root (--read-roots); or http(s) URLs. Files added, changed, renamed or deleted under the globs are ingested or removed within seconds."`
	Refresh      Duration `yaml:"refresh" doc:"How often URL sources are fetched again (conditional GET with ETag / Last-Modified; re-ingested only when changed), at least 1s; default: fetched once."`
	AllowedHosts []string `yaml:"allowed_hosts" doc:"Hosts (or host:port) URL sources and uploads by URL may reach; loopback and private addresses are refused unless listed, and when set only these hosts are reached."`
	Chunking     Chunking `yaml:"chunking" doc:"How documents are split into chunks."`
	Embedder     Embedder `yaml:"embedder" doc:"What embeds the chunks: local (default), provider/model, the name of a Model document, or an inline endpoint {provider, model, base_url, api_key, headers, dimensions}."`
	Store        Store    `yaml:"store" doc:"Where vectors live: embedded (default) or milvus."`
	Search       Search   `yaml:"search" doc:"How agents search this knowledge."`
	Kafka        *Kafka   `yaml:"kafka" doc:"Keep the base in sync with a Kafka topic of document upserts and deletes (JSON {id, text | url, metadata, op: upsert | delete, name}); offsets are committed once the index is written, poison messages go to the dead-letter topic."`
	Rerank       *Rerank  `yaml:"rerank" doc:"Reorders the best hits with a reranking model (Cohere, Jina or TEI /rerank wire); optional."`

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

// Kafka is an event source of a knowledge base: a topic whose messages
// upsert and delete documents. Producers should key messages by document id,
// so that a document's versions stay in order on one partition.
type Kafka struct {
	Brokers         []string   `yaml:"brokers" doc:"Bootstrap brokers, host:port."`
	Topic           string     `yaml:"topic" doc:"The topic of document messages."`
	Group           string     `yaml:"group" doc:"Consumer group; replicas sharing it split the topic's partitions (default troupe-<knowledge name>)."`
	DeadLetterTopic string     `yaml:"dead_letter_topic" doc:"Where poison messages go, with the error in the troupe-error header (default <topic>.dlq)."`
	TLS             *KafkaTLS  `yaml:"tls" doc:"Connect with TLS ({} for the system roots, or ca_file, cert_file, key_file)."`
	SASL            *KafkaSASL `yaml:"sasl" doc:"Authenticate with SASL: {mechanism: plain | scram-sha-256 | scram-sha-512, username, password}; write ${VAR}s so secrets stay in the environment."`
}

// KafkaTLS configures TLS to the brokers.
type KafkaTLS struct {
	CAFile     string `yaml:"ca_file" doc:"PEM file of the certificate authorities to trust (default the system roots)."`
	CertFile   string `yaml:"cert_file" doc:"PEM client certificate, for mutual TLS (with key_file)."`
	KeyFile    string `yaml:"key_file" doc:"PEM client key, for mutual TLS (with cert_file)."`
	ServerName string `yaml:"server_name" doc:"Name to verify the brokers' certificates against (default the broker host)."`
}

// KafkaSASL configures SASL authentication.
type KafkaSASL struct {
	Mechanism string `yaml:"mechanism" spec:"short" enum:"plain,scram-sha-256,scram-sha-512" doc:"plain, scram-sha-256 or scram-sha-512."`
	Username  string `yaml:"username" doc:"User name; write ${VAR}."`
	Password  string `yaml:"password" doc:"Password; write ${VAR} so the secret stays in the environment."`
}

// Search configures retrieval.
type Search struct {
	Mode string `yaml:"mode" spec:"short" enum:"vector,keyword,hybrid" doc:"vector, keyword (BM25) or hybrid (both, scored by the mean of their 0–1 scores); default hybrid."`
	TopK int    `yaml:"top_k" doc:"Results returned per search (default 5)."`
	// MinScore is a pointer so that 0 (keep everything) can be told from
	// unset, should the default ever change.
	MinScore *float64 `yaml:"min_score" doc:"Hits scoring below this (0 to 1) are dropped instead of filling top_k; default 0. Scores: vector = cosine similarity, keyword = share of the query's IDF-weighted terms found, hybrid = their mean, rerank = the reranker's relevance."`
}

// MinRefresh is the shortest refresh interval of URL sources: shorter would
// hammer the sites they come from.
const MinRefresh = time.Second

// IsURLSource reports whether a knowledge source is a URL rather than a file
// glob.
func IsURLSource(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// Rerank configures the reranking of a knowledge base's hits.
type Rerank struct {
	Model      string   `yaml:"model" spec:"required" doc:"Name of a Model document whose base_url serves POST <base_url>/rerank (Cohere, Jina, TEI); its model, api_key and headers are sent."`
	Timeout    Duration `yaml:"timeout" doc:"Limit for one rerank request (default 2s); on timeout or error the hits keep their search order."`
	Candidates int      `yaml:"candidates" doc:"Hits fetched and sent to the reranker before the best top_k are kept (default max(3·top_k, 20), at most 100)."`

	model *Model // written by WithModels on a copy, never on the loaded document
}

// ModelSpec is the Model document Model names, as resolved by
// Knowledge.WithModels (nil before that or when it is unknown).
func (r *Rerank) ModelSpec() *Model { return r.model }

// WithModels returns the knowledge base with the Model documents its
// embedder and reranker name resolved through model, so the knowledge
// service needs no other document. k is left as it is — the loader shares
// it between sets (serving, and the editor's checks of unsaved edits) — and
// a copy is returned when anything was resolved.
func (k *Knowledge) WithModels(model func(name string) *Model) *Knowledge {
	out := k
	if name := k.Embedder.ModelName(); name != "" {
		if m := model(name); m != nil {
			c := *out
			c.Embedder = k.Embedder.WithModel(m)
			out = &c
		}
	}
	if k.Rerank != nil && k.Rerank.Model != "" {
		if m := model(k.Rerank.Model); m != nil {
			if out == k {
				c := *k
				out = &c
			}
			r := *k.Rerank
			r.model = m
			out.Rerank = &r
		}
	}
	return out
}

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
	k.Embedder.applyDefaults()
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
	if k.Kafka != nil {
		if k.Kafka.Group == "" {
			k.Kafka.Group = "troupe-" + k.Name
		}
		if k.Kafka.DeadLetterTopic == "" && k.Kafka.Topic != "" {
			k.Kafka.DeadLetterTopic = k.Kafka.Topic + ".dlq"
		}
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
		case IsURLSource(s):
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
	if k.Refresh != 0 {
		switch {
		case k.Refresh.D() < MinRefresh:
			v.errorf(p+".refresh", "refresh %s is too short: use at least %s", k.Refresh, MinRefresh)
		case !slices.ContainsFunc(k.Sources, IsURLSource):
			v.errorf(p+".refresh", "refresh applies to URL sources and this knowledge base has none: add an http(s) URL to sources or remove refresh")
		}
	}
	for i, h := range k.AllowedHosts {
		hp := indexPath(p+".allowed_hosts", i)
		if h == "" || strings.ContainsAny(h, "/ ") {
			v.errorf(hp, "invalid host %q: write a host name or host:port", v.display(hp, h))
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
	v.embedder(p+".embedder", &k.Embedder)
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
	if k.Kafka != nil {
		k.Kafka.validate(v, p+".kafka")
	}
}

func (c *Kafka) validate(v *validator, p string) {
	if len(c.Brokers) == 0 {
		v.errorf(p, "missing required field \"brokers\": list the bootstrap brokers as host:port")
	}
	for i, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			v.errorf(indexPath(p+".brokers", i), "broker %q is not host:port: write it like kafka:9092", v.display(indexPath(p+".brokers", i), b))
		}
	}
	v.unique(p+".brokers", c.Brokers)
	if c.Topic == "" {
		v.errorf(p, "missing required field \"topic\"")
	} else if c.DeadLetterTopic == c.Topic {
		v.errorf(p+".dead_letter_topic", "the dead-letter topic must differ from the topic: poison messages would be read again")
	}
	if t := c.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		v.errorf(p+".tls", "cert_file and key_file go together: set both for mutual TLS, or neither")
	}
	if s := c.SASL; s != nil {
		switch s.Mechanism {
		case "plain", "scram-sha-256", "scram-sha-512":
		case "":
			v.errorf(p+".sasl", "missing required field \"mechanism\": use plain, scram-sha-256 or scram-sha-512")
		}
		if s.Username == "" || s.Password == "" {
			v.errorf(p+".sasl", "sasl needs a username and a password: write them as ${VAR}s")
		}
	}
}
