package kb

import (
	"github.com/troupehq/troupe/engine/knowledge/chunk"
	"github.com/troupehq/troupe/engine/knowledge/reader"
)

// Config describes what ingestion supports, for GET /knowledge/config.
type Config struct {
	Readers   []reader.Info `json:"readers"`
	Chunkers  []string      `json:"chunkers"`
	Stores    []string      `json:"vector_dbs"`
	Embedders []string      `json:"embedders"`
	MaxBytes  int64         `json:"max_upload_bytes"`
}

// Config returns the supported readers, chunkers, stores and embedders.
func (s *Service) Config() Config {
	stores := []string{"embedded"}
	if s.opts.NewMilvus != nil {
		stores = append(stores, "milvus")
	}
	return Config{Readers: reader.Readers(), Chunkers: chunk.Strategies, Stores: stores,
		Embedders: []string{"local", "openai/<model>", "ollama/<model>", "<Model name>", "{provider, model, base_url}"}, MaxBytes: s.opts.MaxBytes}
}

// MaxBytes is the size limit of one document.
func (s *Service) MaxBytes() int64 { return s.opts.MaxBytes }
