package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"golang.org/x/sync/errgroup"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
)

// Index is where messages land: the knowledge service.
type Index interface {
	// Put makes a keyed document hold its content, indexed when it returns.
	Put(ctx context.Context, k kb.Keyed) (bool, error)
	// Remove deletes a keyed document; a missing one is no error.
	Remove(ctx context.Context, knowledgeID, key string) (bool, error)
	// FetchURL downloads a document named by URL for a knowledge base, through the egress policy and its allowed_hosts.
	FetchURL(ctx context.Context, knowledgeID, url string) ([]byte, string, error)
}

var _ Index = (*kb.Service)(nil)

// Header names set on dead-lettered records.
const (
	HeaderError  = "troupe-error"
	HeaderSource = "troupe-source" // topic/partition/offset of the original
)

// Options configure a Consumer.
type Options struct {
	Knowledge string
	// Config is the base's kafka block as spec loads it: with its group
	// and dead-letter topic defaulted.
	Config spec.Kafka
	Index  Index
	Logger *slog.Logger
	// Attempts bounds how often an ingestion that fails is tried before its
	// message is dead-lettered (default 3); RetryDelay is the first pause
	// between them, doubled each time (default 200ms).
	Attempts   int
	RetryDelay time.Duration
	// Concurrency bounds the documents of one poll ingested at once
	// (default twice GOMAXPROCS); MaxPoll the records of one poll, which
	// is the window a crash may process again (default 500).
	Concurrency int
	MaxPoll     int
	// ClientOptions add to the Kafka client's options (tests shorten the
	// group timeouts).
	ClientOptions []kgo.Opt
}

// Consumer is one member of a knowledge base's consumer group. Run owns its
// client.
type Consumer struct {
	opts Options
	log  *slog.Logger
	cl   *kgo.Client

	lagMu sync.Mutex
	lag   map[int32]int64 // by owned partition

	applied   atomic.Int64 // messages whose effect is in the index
	dead      atomic.Int64 // messages dead-lettered
	unchanged atomic.Int64 // messages that changed nothing
}

// New builds a consumer; it connects when Run starts.
func New(o Options) (*Consumer, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 200 * time.Millisecond
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2 * runtime.GOMAXPROCS(0)
	}
	if o.MaxPoll <= 0 {
		o.MaxPoll = 500
	}
	c := &Consumer{opts: o, log: o.Logger.With("knowledge", o.Knowledge, "topic", o.Config.Topic), lag: map[int32]int64{}}
	cfg := o.Config
	if cfg.Group == "" || cfg.DeadLetterTopic == "" {
		return nil, fmt.Errorf("kafka source of %s: the group and dead-letter topic are unset; pass the kafka block as spec loads it, which defaults them", o.Knowledge)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Only marked records are committed, and records are marked once
		// their poll is in the index; each poll is committed as soon as it
		// is (the periodic commit only repeats that), and a rebalance
		// waits for the poll being processed.
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		kgo.AllowAutoTopicCreation(), // the dead-letter topic, where brokers allow it
	}
	if cfg.TLS != nil {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s := cfg.SASL; s != nil {
		switch s.Mechanism {
		case "plain":
			opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
		case "scram-sha-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
		case "scram-sha-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("kafka sasl mechanism %q: use plain, scram-sha-256 or scram-sha-512", s.Mechanism)
		}
	}
	cl, err := kgo.NewClient(append(opts, o.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for knowledge %s: %w", o.Knowledge, err)
	}
	c.cl = cl
	return c, nil
}

func tlsConfig(t *spec.KafkaTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka tls ca_file %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Lag is how many records of the owned partitions are not processed yet,
// as of the last poll.
func (c *Consumer) Lag() int64 {
	c.lagMu.Lock()
	defer c.lagMu.Unlock()
	var n int64
	for _, l := range c.lag {
		n += l
	}
	return n
}

// Stats counts messages applied to the index, dead-lettered, and found to
// change nothing (duplicates and replays), since the consumer started.
func (c *Consumer) Stats() (applied, deadLettered, unchanged int64) {
	return c.applied.Load(), c.dead.Load(), c.unchanged.Load()
}

// revoked commits what was processed before partitions move to another
// member, so that it does not process them again.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn("committing offsets of revoked partitions", "err", err)
	}
	c.forget(parts)
}

func (c *Consumer) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) { c.forget(parts) }

func (c *Consumer) forget(parts map[string][]int32) {
	c.lagMu.Lock()
	defer c.lagMu.Unlock()
	for _, p := range parts[c.opts.Config.Topic] {
		delete(c.lag, p)
	}
}

// Run consumes until ctx ends or the client fails for good, then leaves
// the group. Records processed but not yet committed when ctx ends are
// processed again by whoever gets their partition: without effect, since
// documents are idempotent.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.cl.CloseAllowingRebalance()
	for {
		fetches := c.cl.PollRecords(ctx, c.opts.MaxPoll)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.log.Warn("fetching from kafka", "partition", p, "err", err)
		})
		recs := fetches.Records()
		if err := c.process(ctx, recs); err != nil {
			if ctx.Err() != nil {
				return nil // shutting down: the poll is processed again
			}
			return fmt.Errorf("kafka source of knowledge %s: %w", c.opts.Knowledge, err)
		}
		c.cl.MarkCommitRecords(recs...)
		if err := c.cl.CommitMarkedOffsets(ctx); err != nil && ctx.Err() == nil {
			// The next commit (or a revoke's) covers these offsets too.
			c.log.Warn("committing kafka offsets", "err", err)
		}
		c.recordLag(fetches)
		c.cl.AllowRebalance()
	}
}

func (c *Consumer) recordLag(fetches kgo.Fetches) {
	c.lagMu.Lock()
	defer c.lagMu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		last := p.Records[len(p.Records)-1].Offset
		c.lag[p.Partition] = max(0, p.HighWatermark-last-1)
	})
}

// task is the last valid message of a poll for one document: earlier ones
// are superseded, as if applied in order and then overwritten.
type task struct {
	msg Message
	rec *kgo.Record
}

// process applies a poll's records: valid messages by document, each
// document's last one only, documents in parallel; invalid ones and those
// that keep failing go to the dead-letter topic. It returns an error only
// when the poll must not be committed.
func (c *Consumer) process(ctx context.Context, recs []*kgo.Record) error {
	var poison []*kgo.Record
	var reasons []error
	last := map[string]int{}
	var tasks []task
	for _, r := range recs {
		m, err := Parse(r.Value)
		if err != nil {
			poison, reasons = append(poison, r), append(reasons, err)
			continue
		}
		if i, ok := last[m.ID]; ok {
			tasks[i] = task{msg: m, rec: r}
			c.unchanged.Add(1) // superseded within the poll
			continue
		}
		last[m.ID] = len(tasks)
		tasks = append(tasks, task{msg: m, rec: r})
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Concurrency)
	for _, t := range tasks {
		g.Go(func() error {
			err := c.applyWithRetry(gctx, t.msg)
			if err == nil {
				return nil
			}
			if gctx.Err() != nil {
				return gctx.Err()
			}
			if errors.Is(err, knowledge.ErrNotFound) {
				// The knowledge base left the configuration (or is not
				// in it yet): the message is fine, so the poll stays
				// uncommitted for when the base is back.
				return err
			}
			mu.Lock()
			poison, reasons = append(poison, t.rec), append(reasons, err)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(poison) > 0 {
		return c.deadLetter(ctx, poison, reasons)
	}
	return nil
}

func (c *Consumer) applyWithRetry(ctx context.Context, m Message) error {
	delay := c.opts.RetryDelay
	var err error
	for attempt := 1; ; attempt++ {
		err = c.apply(ctx, m)
		if kb.Busy(err) && ctx.Err() == nil {
			// The same document is being ingested in this process (a
			// redelivery after a rebalance): that ingestion ends, so
			// waiting for it does not use up an attempt and never
			// dead-letters the message.
			attempt--
		} else if err == nil || errors.Is(err, errPoison) || permanent(err) || errors.Is(err, knowledge.ErrNotFound) || attempt >= c.opts.Attempts || ctx.Err() != nil {
			return err
		}
		c.log.Warn("applying a kafka message failed; retrying", "document", m.ID, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, maxRetryDelay)
	}
}

// maxRetryDelay caps the doubling pause between attempts: waiting out a busy
// document can take many.
const maxRetryDelay = 5 * time.Second

// permanent reports errors another attempt cannot fix.
func permanent(err error) bool {
	return errors.Is(err, kb.ErrInvalid) || errors.Is(err, kb.ErrTooLarge) || errors.Is(err, kb.ErrUnsupported)
}

func (c *Consumer) apply(ctx context.Context, m Message) error {
	k := key(m.ID)
	if m.Op == OpDelete {
		changed, err := c.opts.Index.Remove(ctx, c.opts.Knowledge, k)
		c.count(changed, err)
		return err
	}
	content, name := []byte(nil), m.Name
	if m.Text != nil {
		content = []byte(*m.Text)
	} else {
		data, urlName, err := c.opts.Index.FetchURL(ctx, c.opts.Knowledge, m.URL)
		if err != nil {
			return err
		}
		content = data
		if name == "" {
			name = urlName
		}
	}
	changed, err := c.opts.Index.Put(ctx, kb.Keyed{KnowledgeID: c.opts.Knowledge, Key: k, Name: name, Content: content, Metadata: m.Metadata})
	c.count(changed, err)
	return err
}

func (c *Consumer) count(changed bool, err error) {
	switch {
	case err != nil:
	case changed:
		c.applied.Add(1)
	default:
		c.unchanged.Add(1)
	}
}

// deadLetter produces poison records to the dead-letter topic with their
// error; a poll is committed only once they are there.
func (c *Consumer) deadLetter(ctx context.Context, recs []*kgo.Record, reasons []error) error {
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		c.log.Warn("dead-lettering a kafka message", "partition", r.Partition, "offset", r.Offset, "err", reasons[i])
		headers := append([]kgo.RecordHeader(nil), r.Headers...)
		headers = append(headers,
			kgo.RecordHeader{Key: HeaderError, Value: []byte(reasons[i].Error())},
			kgo.RecordHeader{Key: HeaderSource, Value: []byte(r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10))})
		out[i] = &kgo.Record{Topic: c.opts.Config.DeadLetterTopic, Key: r.Key, Value: r.Value, Headers: headers}
	}
	if err := c.cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
		return fmt.Errorf("writing %d poison messages to the dead-letter topic %s (create it, or let the brokers create topics): %w",
			len(out), c.opts.Config.DeadLetterTopic, err)
	}
	c.dead.Add(int64(len(out)))
	return nil
}
