package kafka_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kafka"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// BenchmarkIngest measures Kafka ingestion with the local embedder: 1 KB
// documents, each its own id, from a 4-partition topic on the in-process
// cluster into the embedded index, with documents and chunks in memory or
// in SQLite (as `troupe serve` keeps them by default). It reports documents
// per second (target: 2,000).
func BenchmarkIngest(b *testing.B) {
	backends := []string{"memory", "sqlite"}
	if os.Getenv("TROUPE_TEST_POSTGRES_DSN") != "" {
		backends = append(backends, "postgres")
	}
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			const docs = 4000
			word := strings.Fields("agents knowledge kafka ingestion document search vector keyword hybrid replica partition offset commit index chunk embed")
			values := make([][]byte, docs)
			for i := range values {
				var sb strings.Builder
				for j := 0; sb.Len() < 1000; j++ {
					sb.WriteString(word[(i*7+j*3)%len(word)])
					sb.WriteString(fmt.Sprintf(" %d ", i*31+j))
				}
				values[i] = []byte(fmt.Sprintf(`{"id": "doc-%d", "text": %q, "metadata": {"n": %d}}`, i, sb.String()[:1000], i))
			}
			var total time.Duration
			for i := 0; b.Loop(); i++ {
				c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "docs", "docs.dlq"))
				if err != nil {
					b.Fatal(err)
				}
				brokers := c.ListenAddrs()
				prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("docs"))
				if err != nil {
					b.Fatal(err)
				}
				recs := make([]*kgo.Record, len(values))
				for j, v := range values {
					recs[j] = &kgo.Record{Key: fmt.Appendf(nil, "doc-%d", j), Value: v}
				}
				if err := prod.ProduceSync(b.Context(), recs...).FirstErr(); err != nil {
					b.Fatal(err)
				}
				prod.Close()

				opts := kb.Options{}
				if backend != "memory" {
					dsn := filepath.Join(b.TempDir(), "troupe.db")
					if backend == "postgres" {
						dsn = os.Getenv("TROUPE_TEST_POSTGRES_DSN")
					}
					db, err := store.Open(b.Context(), dsn, store.Options{})
					if err != nil {
						b.Fatal(err)
					}
					defer db.Close()
					opts.Documents, opts.Chunks, opts.Stats = db.Knowledge(), db.Knowledge(), db.Knowledge()
				} else {
					mem := kb.NewMemoryDocuments()
					opts.Documents, opts.Stats = mem, mem
				}
				svc, err := kb.New(b.Context(), opts)
				if err != nil {
					b.Fatal(err)
				}
				name := fmt.Sprintf("bench-%d", time.Now().UnixNano()) // PostgreSQL keeps earlier runs' documents
				k := &spec.Knowledge{Meta: spec.Meta{Name: name}, Chunking: spec.Chunking{Strategy: "recursive", Size: spec.DefaultChunkSize, Overlap: spec.DefaultChunkOverlap},
					Embedder: spec.Embedder{Model: "local"}, Store: spec.Store{Type: "embedded"}, Search: spec.Search{Mode: "hybrid", TopK: 5},
					Kafka: &spec.Kafka{Brokers: brokers, Topic: "docs", Group: fmt.Sprintf("bench-%d", i), DeadLetterTopic: "docs.dlq"}}
				svc.Configure(b.Context(), []*spec.Knowledge{k})
				cons, err := kafka.New(kafka.Options{Knowledge: name, Config: *k.Kafka, Index: svc, Concurrency: benchConcurrency, ClientOptions: []kgo.Opt{kgo.FetchMaxWait(50 * time.Millisecond)}})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(b.Context())
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- cons.Run(ctx) }()
				for {
					applied, _, _ := cons.Stats()
					if applied == docs {
						break
					}
					time.Sleep(2 * time.Millisecond)
				}
				total += time.Since(start)
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				_, n, err := svc.List(b.Context(), knowledge.DocumentQuery{KnowledgeID: name, Status: knowledge.StatusCompleted, Limit: 1})
				if err != nil || n != docs {
					b.Fatalf("%d documents indexed (%v), want %d", n, err, docs)
				}
				svc.Close()
				c.Close()
			}
			b.ReportMetric(float64(docs*b.N)/total.Seconds(), "docs/s")
		})
	}
}

// benchConcurrency is the documents ingested at once (0: the default).
var benchConcurrency, _ = strconv.Atoi(os.Getenv("TROUPE_BENCH_KAFKA_CONCURRENCY"))
