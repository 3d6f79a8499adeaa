package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/kafka"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cluster starts an in-process Kafka cluster (kfake speaks the real
// protocol) with the topic and its dead-letter topic.
func cluster(t *testing.T, partitions int32) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "docs", "docs.dlq"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// base is a knowledge service with one base "events" fed by the topic.
type base struct {
	svc  *kb.Service
	docs *kb.MemoryDocuments
	spec *spec.Knowledge
}

func newBase(t *testing.T, brokers []string) *base {
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf("kind: Knowledge\nname: events\nkafka:\n  brokers: [%s]\n  topic: docs\n", strings.Join(brokers, ", "))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kb.yaml"), []byte(src), 0o644))
	set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
	require.NoError(t, err)
	require.Empty(t, set.Diagnostics().Errors())
	k := set.Knowledge("events")
	require.Equal(t, "troupe-events", k.Kafka.Group)
	require.Equal(t, "docs.dlq", k.Kafka.DeadLetterTopic)
	docs := kb.NewMemoryDocuments()
	svc, err := kb.New(t.Context(), kb.Options{Documents: docs, Stats: docs})
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	svc.Configure(t.Context(), []*spec.Knowledge{k})
	return &base{svc: svc, docs: docs, spec: k}
}

// fastGroup shortens the group protocol's timeouts for tests.
var fastGroup = []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond), kgo.HeartbeatInterval(100 * time.Millisecond),
	kgo.SessionTimeout(6 * time.Second), kgo.RebalanceTimeout(3 * time.Second)}

func (b *base) consumer(t *testing.T, idx kafka.Index, maxPoll int, extra ...kgo.Opt) *kafka.Consumer {
	t.Helper()
	c, err := kafka.New(kafka.Options{Knowledge: "events", Config: *b.spec.Kafka, Index: idx, MaxPoll: maxPoll,
		RetryDelay: time.Millisecond, ClientOptions: append(slices.Clone(fastGroup), extra...)})
	require.NoError(t, err)
	return c
}

// run runs a consumer until the returned stop is called.
func run(t *testing.T, c *kafka.Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

func produce(t *testing.T, brokers []string, values ...[]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("docs"))
	require.NoError(t, err)
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		var m struct{ ID string }
		_ = json.Unmarshal(v, &m)
		recs[i] = &kgo.Record{Key: []byte(m.ID), Value: v}
	}
	require.NoError(t, cl.ProduceSync(t.Context(), recs...).FirstErr())
}

func msg(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// doc is a document as the index holds it.
type doc struct {
	Text     string
	Metadata map[string]any
}

// state reads the base's documents back from the index: their content
// from the document store, and their chunks from the vector store.
func (b *base) state(t *testing.T) map[string]doc {
	t.Helper()
	ds, _, err := b.docs.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "events", Limit: 1 << 20})
	require.NoError(t, err)
	out := map[string]doc{}
	chunks := 0
	for _, d := range ds {
		require.Equal(t, knowledge.StatusCompleted, d.Status, d.Message)
		content, err := b.docs.Content(t.Context(), d.ID)
		require.NoError(t, err)
		id := strings.TrimPrefix(d.Source, "kafka:")
		require.NotContains(t, out, id, "two documents for one id")
		out[id] = doc{Text: string(content), Metadata: d.Metadata}
		chunks += d.Chunks
	}
	require.Equal(t, chunks, b.svc.Embedded().Count("events"), "the vector store holds exactly the documents' chunks")
	return out
}

// TestFinalState: 1,000 messages of upserts, duplicates, updates, deletes
// and one poison message leave the index exactly in the final state, the
// poison message in the dead-letter topic with its error, and every offset
// committed (a new member of the group finds nothing to do).
func TestFinalState(t *testing.T) {
	brokers := cluster(t, 4)
	b := newBase(t, brokers)
	rng := rand.New(rand.NewPCG(20, 3))
	want := map[string]doc{}
	var values [][]byte
	var sent []map[string]any
	version := 0
	for len(values) < 999 {
		id := fmt.Sprintf("doc-%03d", rng.IntN(150))
		switch r := rng.IntN(10); {
		case r < 2 && len(sent) > 0: // a duplicate of an earlier message, which may be stale: replay it as is
			prev := sent[rng.IntN(len(sent))]
			if prev["id"] != id {
				continue // only a document's latest message can be resent without reordering it
			}
			values = append(values, msg(t, prev))
			continue
		case r < 3: // delete
			m := map[string]any{"id": id, "op": "delete"}
			values, sent = append(values, msg(t, m)), append(sent, m)
			delete(want, id)
		default: // upsert: new or an update
			version++
			text := fmt.Sprintf("Document %s, version %d. Token v%dx%s.", id, version, version, strings.ReplaceAll(id, "-", ""))
			md := map[string]any{"version": float64(version), "team": []string{"a", "b"}[version%2]}
			m := map[string]any{"id": id, "text": text, "metadata": md}
			values, sent = append(values, msg(t, m)), append(sent, m)
			want[id] = doc{Text: text, Metadata: map[string]any{"version": float64(version), "team": md["team"]}}
		}
		// Resending a document's latest message must change nothing.
		if last := sent[len(sent)-1]; rng.IntN(8) == 0 {
			values = append(values, msg(t, last))
		}
	}
	poisonAt := 500
	values = slices.Insert(values, poisonAt, []byte(`{"id": "doc-x", "text": unquoted}`))
	values = values[:1000]
	// The insert may have pushed out the last message: recompute the final
	// state from what is actually sent.
	want = map[string]doc{}
	for _, v := range values {
		m, err := kafka.Parse(v)
		if err != nil {
			continue
		}
		if m.Op == kafka.OpDelete {
			delete(want, m.ID)
			continue
		}
		want[m.ID] = doc{Text: *m.Text, Metadata: m.Metadata}
	}
	require.Len(t, values, 1000)
	produce(t, brokers, values...)

	c := b.consumer(t, b.svc, 100)
	stop := run(t, c)
	require.Eventually(t, func() bool {
		_, dead, _ := c.Stats()
		return dead == 1 && c.Lag() == 0 && len(mustState(t, b)) == len(want)
	}, 30*time.Second, 50*time.Millisecond)
	stop()
	require.Equal(t, want, b.state(t))

	// The dead-letter topic holds the poison message and why.
	dl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("docs.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer dl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	fs := dl.PollFetches(ctx)
	require.NoError(t, fs.Err0())
	recs := fs.Records()
	require.Len(t, recs, 1)
	require.Equal(t, `{"id": "doc-x", "text": unquoted}`, string(recs[0].Value))
	headers := map[string]string{}
	for _, h := range recs[0].Headers {
		headers[h.Key] = string(h.Value)
	}
	require.Contains(t, headers[kafka.HeaderError], "not a JSON document message")
	require.True(t, strings.HasPrefix(headers[kafka.HeaderSource], "docs/"), headers[kafka.HeaderSource])

	// Everything was committed: a new member replays nothing.
	counted := &counting{Index: b.svc}
	again := b.consumer(t, counted, 100)
	stop = run(t, again)
	time.Sleep(2 * time.Second)
	stop()
	require.Zero(t, counted.total())
	require.Equal(t, want, b.state(t))
}

func mustState(t *testing.T, b *base) map[string]doc {
	ds, _, err := b.docs.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "events", Limit: 1 << 20})
	require.NoError(t, err)
	out := map[string]doc{}
	for _, d := range ds {
		if d.Status == knowledge.StatusCompleted {
			out[d.Source] = doc{}
		}
	}
	return out
}

// counting counts the documents each consumer puts, and can stop its
// consumer after a number of them, as a crash would.
type counting struct {
	kafka.Index
	mu      sync.Mutex
	puts    map[string]int
	after   int64
	n       atomic.Int64
	crashed func()
}

func (c *counting) Put(ctx context.Context, k kb.Keyed) (bool, error) {
	changed, err := c.Index.Put(ctx, k)
	if err != nil {
		return changed, err
	}
	c.mu.Lock()
	if c.puts == nil {
		c.puts = map[string]int{}
	}
	c.puts[k.Key]++
	c.mu.Unlock()
	if n := c.n.Add(1); c.crashed != nil && n == c.after {
		c.crashed()
	}
	return changed, nil
}

func (c *counting) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.puts {
		n += v
	}
	return n
}

func (c *counting) keys() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cloneCounts(c.puts)
}

func cloneCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func texts(t *testing.T, n int) [][]byte {
	values := make([][]byte, n)
	for i := range values {
		values[i] = msg(t, map[string]any{"id": fmt.Sprintf("d%04d", i), "text": fmt.Sprintf("document number %d", i)})
	}
	return values
}

// TestCrashReprocessesOnlyTheUncommittedWindow: a consumer cut off in the
// middle of a poll, without committing it, and a new one in its place
// process again at most that poll's records, and the index ends complete.
func TestCrashReprocessesOnlyTheUncommittedWindow(t *testing.T) {
	brokers := cluster(t, 1)
	b := newBase(t, brokers)
	const n, window = 300, 50
	produce(t, brokers, texts(t, n)...)

	ctx, crash := context.WithCancel(t.Context())
	first := &counting{Index: b.svc, after: 120, crashed: crash}
	c := b.consumer(t, first, window)
	require.NoError(t, c.Run(ctx)) // returns once crashed
	require.GreaterOrEqual(t, first.total(), 120)

	second := &counting{Index: b.svc}
	stop := run(t, b.consumer(t, second, window))
	require.Eventually(t, func() bool { return len(mustState(t, b)) == n }, 30*time.Second, 20*time.Millisecond)
	stop()
	again := 0
	for k := range second.keys() {
		if first.keys()[k] > 0 {
			again++
		}
	}
	t.Logf("first consumer put %d documents, the second %d, of which %d again (window %d)", first.total(), second.total(), again, window)
	require.Positive(t, again, "the crash left processed records uncommitted")
	require.LessOrEqual(t, again, window)
	require.Equal(t, n, first.total()+second.total()-again)
	require.Len(t, b.state(t), n)
}

// TestGroupSplitsPartitions: two consumers in one group each get some of
// the partitions, and no message is processed twice, across the rebalance
// of the second one joining too (revoked partitions are committed first).
func TestGroupSplitsPartitions(t *testing.T) {
	brokers := cluster(t, 4)
	b := newBase(t, brokers)
	var counts [2]*counting
	for i := range 2 {
		counts[i] = &counting{Index: b.svc}
		run(t, b.consumer(t, counts[i], 100))
	}
	// Until the group has settled, one consumer may get everything: send
	// small rounds until both have had some.
	sent := 0
	for round := 0; counts[0].total() == 0 || counts[1].total() == 0; round++ {
		require.Less(t, round, 200, "the second consumer never got a partition")
		values := make([][]byte, 8)
		for i := range values {
			values[i] = msg(t, map[string]any{"id": fmt.Sprintf("warm-%d-%d", round, i), "text": "warming up"})
		}
		produce(t, brokers, values...)
		sent += len(values)
		require.Eventually(t, func() bool { return counts[0].total()+counts[1].total() == sent }, 10*time.Second, 10*time.Millisecond)
	}
	const n = 400
	produce(t, brokers, texts(t, n)...)
	sent += n
	require.Eventually(t, func() bool { return counts[0].total()+counts[1].total() >= sent }, 30*time.Second, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // anything processed twice would show now
	a, c := counts[0].keys(), counts[1].keys()
	for k, v := range a {
		require.Equal(t, 1, v, k)
		require.Zero(t, c[k], k)
	}
	for k, v := range c {
		require.Equal(t, 1, v, k)
	}
	require.Equal(t, sent, len(a)+len(c))
	require.Len(t, b.state(t), sent)
	t.Logf("the consumers put %d and %d documents", len(a), len(c))
}

// TestManagerFollowsConfiguration: the manager starts a consumer for a base
// with a kafka source, reports its lag, and stops it when the source leaves
// the configuration.
func TestManagerFollowsConfiguration(t *testing.T) {
	brokers := cluster(t, 2)
	b := newBase(t, brokers)
	m := runManager(t, b)
	m.Configure([]*spec.Knowledge{b.spec})
	produce(t, brokers, texts(t, 20)...)
	require.Eventually(t, func() bool { return len(mustState(t, b)) == 20 }, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return m.Lag()["events"] == 0 && len(m.Lag()) == 1 }, 10*time.Second, 20*time.Millisecond)

	plain := *b.spec
	plain.Kafka = nil
	m.Configure([]*spec.Knowledge{&plain})
	require.Eventually(t, func() bool { return len(m.Lag()) == 0 }, 10*time.Second, 20*time.Millisecond)
	produce(t, brokers, msg(t, map[string]any{"id": "late", "text": "not consumed"}))
	time.Sleep(500 * time.Millisecond)
	require.Len(t, mustState(t, b), 20)
}

// TestUnconfiguredBaseCommitsNothing: messages for a knowledge base that is
// not configured are not dead-lettered, and stay uncommitted until it is.
func TestUnconfiguredBaseCommitsNothing(t *testing.T) {
	brokers := cluster(t, 1)
	b := newBase(t, brokers)
	b.svc.Configure(t.Context(), nil)
	produce(t, brokers, texts(t, 5)...)
	c := b.consumer(t, b.svc, 100)
	err := c.Run(t.Context())
	require.ErrorIs(t, err, knowledge.ErrNotFound)
	applied, dead, _ := c.Stats()
	require.Zero(t, applied)
	require.Zero(t, dead)

	b.svc.Configure(t.Context(), []*spec.Knowledge{b.spec})
	again := b.consumer(t, b.svc, 100)
	stop := run(t, again)
	require.Eventually(t, func() bool { return len(mustState(t, b)) == 5 }, 20*time.Second, 20*time.Millisecond)
	stop()
	applied, dead, _ = again.Stats()
	require.Equal(t, int64(5), applied)
	require.Zero(t, dead)
}

// TestManagerRestartsOnlyForKafkaEdits: an edit of a base outside its kafka
// block (here search.top_k) keeps its consumer — a restart would leave and
// rejoin the group, rebalancing every replica — while an edit of the kafka
// block starts a new one.
func TestManagerRestartsOnlyForKafkaEdits(t *testing.T) {
	brokers := cluster(t, 1)
	b := newBase(t, brokers)
	load := func(extra string) *spec.Knowledge {
		dir := t.TempDir()
		src := fmt.Sprintf("kind: Knowledge\nname: events\nkafka:\n  brokers: [%s]\n  topic: docs\n%s", strings.Join(brokers, ", "), extra)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "kb.yaml"), []byte(src), 0o644))
		set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
		require.NoError(t, err)
		require.Empty(t, set.Diagnostics().Errors())
		return set.Knowledge("events")
	}
	m := runManager(t, b)
	m.Configure([]*spec.Knowledge{b.spec})
	produce(t, brokers, texts(t, 5)...)
	require.Eventually(t, func() bool { return len(mustState(t, b)) == 5 }, 20*time.Second, 20*time.Millisecond)
	first := m.Live("events")
	require.NotNil(t, first)

	edited := load("search: {top_k: 7}\n")
	require.NotEqual(t, b.spec.Hash(), edited.Hash(), "the edit changes the document")
	m.Configure([]*spec.Knowledge{edited})
	require.Never(t, func() bool { return m.Live("events") != first }, time.Second, 10*time.Millisecond, "an edit outside kafka restarted the consumer")

	produce(t, brokers, msg(t, map[string]any{"id": "after-edit", "text": "still consumed"}))
	require.Eventually(t, func() bool { return len(mustState(t, b)) == 6 }, 20*time.Second, 20*time.Millisecond)

	m.Configure([]*spec.Knowledge{load("  dead_letter_topic: docs.dlq\nsearch: {top_k: 7}\n")})
	require.Never(t, func() bool { return m.Live("events") != first }, 500*time.Millisecond, 10*time.Millisecond, "writing out a default is no change")
	m.Configure([]*spec.Knowledge{load("  group: events-v2\nsearch: {top_k: 7}\n")})
	require.Eventually(t, func() bool { c := m.Live("events"); return c != nil && c != first }, 10*time.Second, 10*time.Millisecond, "a kafka edit starts a new consumer")
	produce(t, brokers, msg(t, map[string]any{"id": "after-restart", "text": "consumed by the new group"}))
	require.Eventually(t, func() bool { return len(mustState(t, b)) == 7 }, 20*time.Second, 20*time.Millisecond)
}

// TestNewWantsTheDefaultedConfig: spec defaults the group and dead-letter
// topic; a config that skipped spec is refused rather than consuming under
// an empty group or dead-lettering nowhere.
func TestNewWantsTheDefaultedConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  spec.Kafka
		ok   bool
	}{
		{"defaulted", spec.Kafka{Brokers: []string{"127.0.0.1:1"}, Topic: "docs", Group: "troupe-events", DeadLetterTopic: "docs.dlq"}, true},
		{"no group", spec.Kafka{Brokers: []string{"127.0.0.1:1"}, Topic: "docs", DeadLetterTopic: "docs.dlq"}, false},
		{"no dead-letter topic", spec.Kafka{Brokers: []string{"127.0.0.1:1"}, Topic: "docs", Group: "troupe-events"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := kafka.New(kafka.Options{Knowledge: "events", Config: tt.cfg})
			if tt.ok {
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				_ = c.Run(ctx) // closes the client New made
				return
			}
			require.ErrorContains(t, err, "pass the kafka block as spec loads it")
		})
	}
}

// holdEmbedder holds every embedding until held is closed, saying when the
// first one arrives.
type holdEmbedder struct {
	knowledge.Embedder
	held    chan struct{}
	entered chan struct{} // buffered 1
}

func (h *holdEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	select {
	case <-h.held:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.Embedder.Embed(ctx, texts)
}

// TestBusyDocumentIsWaitedOut: a message for a document whose ingestion is
// still running in this process (a redelivery after a rebalance) is
// retried until that ingestion ends — however many attempts that takes —
// and is never dead-lettered nor taken for an unconfigured base.
func TestBusyDocumentIsWaitedOut(t *testing.T) {
	brokers := cluster(t, 1)
	b := newBase(t, brokers)
	emb := &holdEmbedder{Embedder: embed.NewLocal(embed.LocalOptions{Dimension: kb.LocalDimension}),
		held: make(chan struct{}), entered: make(chan struct{}, 1)}
	docs := kb.NewMemoryDocuments()
	svc, err := kb.New(t.Context(), kb.Options{Documents: docs, Stats: docs,
		NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) { return emb, nil }})
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	svc.Configure(t.Context(), []*spec.Knowledge{b.spec})

	first := make(chan error, 1)
	go func() {
		_, err := svc.Put(context.Background(), kb.Keyed{KnowledgeID: "events", Key: "kafka:held", Content: []byte("the held document")})
		first <- err
	}()
	<-emb.entered
	produce(t, brokers, msg(t, map[string]any{"id": "held", "text": "the held document"}))
	c := b.consumer(t, svc, 100) // 3 attempts, 1ms apart at first
	stop := run(t, c)
	require.Never(t, func() bool {
		applied, dead, unchanged := c.Stats()
		return applied+dead+unchanged > 0
	}, 700*time.Millisecond, 10*time.Millisecond, "the message was settled while its document was busy")

	close(emb.held)
	require.NoError(t, <-first)
	require.Eventually(t, func() bool {
		_, _, unchanged := c.Stats()
		return unchanged == 1
	}, 10*time.Second, 10*time.Millisecond, "the retry finds the document the first put finished")
	stop()
	applied, dead, _ := c.Stats()
	require.Zero(t, applied)
	require.Zero(t, dead)
	ds, _, err := docs.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "events"})
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, knowledge.StatusCompleted, ds[0].Status)
}

// runManager runs a manager over b's service until the test ends, when it
// must stop cleanly.
func runManager(t *testing.T, b *base) *kafka.Manager {
	t.Helper()
	m := kafka.NewManager(kafka.ManagerOptions{Index: b.svc, ClientOptions: fastGroup})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return m
}
