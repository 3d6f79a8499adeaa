package console_test

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console"
	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/learning"
	"github.com/troupehq/troupe/engine/memory"
	"github.com/troupehq/troupe/engine/memory/extract"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/echo"
	"github.com/troupehq/troupe/engine/model/openai"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/summary"
	"github.com/troupehq/troupe/engine/tool/builtin"
	"github.com/troupehq/troupe/engine/tool/egress"
	"github.com/troupehq/troupe/engine/trigger"
	"github.com/troupehq/troupe/engine/workflow"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/watch"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

const fixture = `kind: Model
name: vendor
provider: openai
model: test-model
base_url: ${VENDOR_URL}
api_key: sk-test
retries: 0
---
kind: Agent
name: calc
description: Does arithmetic.
model: vendor
instructions: v0
tools: [calculator]
history: 5
---
kind: Agent
name: writer
description: Writes.
model: vendor
instructions: Write.
---
kind: Team
name: crew
description: Routes to the writer.
mode: route
model: echo
members: [writer]
---
kind: Knowledge
name: docs
description: Uploaded documents.
chunking: {strategy: recursive, size: 120, overlap: 20}
---
kind: Agent
name: helpdesk
description: Answers from the docs.
model: echo
tools: [knowledge_search, calculator, current_time]
knowledge: [docs]
`

// countingFiles is the run files' store on disk, counting the files put.
type countingFiles struct {
	files.Store
	puts atomic.Int64
}

func (c *countingFiles) Put(ctx context.Context, key string, data []byte) error {
	c.puts.Add(1)
	return c.Store.Put(ctx, key, data)
}

type testServer struct {
	t testing.TB
	// files is the run files' store, with withFiles.
	files    *countingFiles
	url      string
	dir      string
	srv      *console.Server
	runs     *session.Service
	eng      *engine.Engine
	db       *store.DB
	kb       *kb.Service
	memories *memory.Service
	// extractor extracts memories after runs (memory: automatic).
	extractor *extract.Extractor
	learner   *learning.Learner
	recorder  *telemetry.Recorder
	traces    traceStore
	metrics   *telemetry.Metrics
	jobs      *jobs.Client
	triggers  *trigger.Service
	v         *vendor
	stop      func()
	errc      chan error
}

// harness is what the options of startServer choose.
type harness struct {
	dsn        string     // database URL; a fresh SQLite file when empty
	traces     traceStore // where spans go and traces are read; the database's own when nil
	flush      time.Duration
	noTracing  bool // run without a recorder, as troupe serve does with tracing off
	keys       *auth.Keyring
	watch      bool   // reload when files in the spec folder change, as troupe serve does
	specs      string // more documents, in a second spec file
	opts       func(*console.Options)
	providers  map[string]model.Provider // registered by provider name, besides openai and echo
	filesDir   string
	fileLimits files.Limits
	// maxRuns and maxQueued bound background runs (default 4 at once, any
	// number queued).
	maxRuns, maxQueued int
	observers          []session.Observer // besides tracing and metrics
	egress             []string           // hosts guardrails' HTTP calls may reach (engine.Runtime.Egress)
	// keyTTL is how long idempotency keys last (the service's default
	// when 0).
	keyTTL time.Duration
	// limits builds the rate limiter on the server's store (none when nil).
	limits func(db *store.DB) *ratelimit.Limiter
	// webhook and webhookSecret announce new approvals.
	webhook, webhookSecret string
	tracer                 func(*telemetry.Tracer) // configures the runs' tracer
	env                    map[string]string       // the specs' environment, besides VENDOR_URL
}

// withTracer lets f configure the runs' tracer (exporters, content).
func withTracer(f func(*telemetry.Tracer)) serverOption { return func(h *harness) { h.tracer = f } }

// withEnv sets a variable of the specs' environment.
func withEnv(k, v string) serverOption {
	return func(h *harness) {
		if h.env == nil {
			h.env = map[string]string{}
		}
		h.env[k] = v
	}
}

// withApprovalWebhook announces new approvals to url, signed with secret.
func withApprovalWebhook(url, secret string) serverOption {
	return func(h *harness) { h.webhook, h.webhookSecret = url, secret }
}

// traceStore is a trace sink the console can also read back.
type traceStore interface {
	telemetry.Sink
	telemetry.Reader
}

type serverOption func(*harness)

// withDatabase runs the server on another database (a PostgreSQL URL).
func withDatabase(dsn string) serverOption { return func(h *harness) { h.dsn = dsn } }

// withTraces sends spans to, and reads traces from, another store.
func withTraces(s traceStore) serverOption { return func(h *harness) { h.traces = s } }

// withoutTracing turns tracing off.
// withFlushInterval sets how often the span recorder writes (100ms unless set).
func withFlushInterval(d time.Duration) serverOption { return func(h *harness) { h.flush = d } }

func withoutTracing() serverOption { return func(h *harness) { h.noTracing = true } }

// withWatcher reloads on file changes, as troupe serve does.
func withWatcher() serverOption { return func(h *harness) { h.watch = true } }

// withSpecs adds documents to the fixture's.
func withSpecs(yaml string) serverOption { return func(h *harness) { h.specs = yaml } }

// withProvider serves the models of provider name (one of spec.Providers,
// such as anthropic) from p, a scripted fake.
func withProvider(name string, p model.Provider) serverOption {
	return func(h *harness) {
		if h.providers == nil {
			h.providers = map[string]model.Provider{}
		}
		h.providers[name] = p
	}
}

// withBackground bounds background runs: maxRuns execute at once, and
// maxQueued may wait (0: any number).
func withBackground(maxRuns, maxQueued int) serverOption {
	return func(h *harness) { h.maxRuns, h.maxQueued = maxRuns, maxQueued }
}

// withObserver adds an observer of the run service's runs.
func withObserver(o session.Observer) serverOption {
	return func(h *harness) { h.observers = append(h.observers, o) }
}

// withKeyTTL keeps idempotency keys for ttl, and purges them as often.
// withEgress lets guardrails' HTTP calls reach hosts (loopback test servers).
func withEgress(hosts ...string) serverOption { return func(h *harness) { h.egress = hosts } }

func withKeyTTL(ttl time.Duration) serverOption { return func(h *harness) { h.keyTTL = ttl } }

// withOptions changes the server's options before it starts.
func withOptions(f func(*console.Options)) serverOption { return func(h *harness) { h.opts = f } }

// withFiles keeps run files on disk in dir, as troupe serve does under
// --files-dir, with limits (zero fields: the defaults).
func withFiles(dir string, limits files.Limits) serverOption {
	return func(h *harness) { h.filesDir, h.fileLimits = dir, limits }
}

func withKeys(spec string) serverOption {
	return func(h *harness) {
		k, err := auth.ParseKeys(spec)
		if err != nil {
			panic(err)
		}
		h.keys = k
	}
}

func startServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	ts := &testServer{t: t, dir: t.TempDir(), v: newVendor(t)}
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "specs.yaml"), []byte(fixture), 0o644))
	var h harness
	env := func(k string) (string, bool) {
		if k == "VENDOR_URL" {
			return ts.v.srv.URL, true
		}
		v, ok := h.env[k]
		return v, ok
	}
	reg := model.NewRegistry()
	reg.Register("openai", func(c model.Config) (model.Provider, error) {
		return openai.New(openai.Options{BaseURL: c.BaseURL, APIKey: c.APIKey}), nil
	})
	reg.Register("echo", echo.New)
	for _, opt := range opts {
		opt(&h)
	}
	for name, p := range h.providers {
		reg.Register(name, func(model.Config) (model.Provider, error) { return p, nil })
	}
	if h.specs != "" {
		require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "extra.yaml"), []byte(h.specs), 0o644))
	}
	if h.dsn == "" {
		h.dsn = filepath.Join(t.TempDir(), "troupe.db")
	}
	var err error
	var disk *countingFiles
	if h.filesDir != "" {
		d, err := files.NewDisk(h.filesDir)
		require.NoError(t, err)
		disk = &countingFiles{Store: d}
		ts.files = disk
	}
	storeOpts := store.Options{}
	if disk != nil {
		storeOpts.Blobs = disk
	}
	ts.db, err = store.Open(context.Background(), h.dsn, storeOpts)
	require.NoError(t, err)
	// As in troupe serve: ingestion runs on the job engine, on the store's
	// database.
	jobReg := jobs.NewRegistry()
	jobClient, err := ts.db.OpenJobs(context.Background(), jobs.Options{Registry: jobReg, StopTimeout: 5 * time.Second,
		Queues: map[string]int{jobs.RunQueueName: cmp.Or(h.maxRuns, 4)}})
	require.NoError(t, err)
	ts.jobs = jobClient
	ts.kb, err = kb.New(context.Background(), kb.Options{Documents: ts.db.Knowledge(), Chunks: ts.db.Knowledge(), Stats: ts.db.Knowledge(), Fetches: ts.db.Knowledge(),
		Queue: jobs.IngestQueue{Client: jobClient},
		// As in troupe serve: URL fetches go through the egress guard, which
		// a knowledge base's allowed_hosts opens for its hosts.
		HTTPClient:  egress.Policy{}.Client(time.Minute),
		HostsClient: func(hosts []string) *http.Client { return egress.Policy{AllowedHosts: hosts}.Client(time.Minute) }})
	require.NoError(t, err)
	jobs.RegisterIngestion(jobReg, ts.kb)
	// As in troupe serve: agents with learning save insights through the
	// learner, which pins them on the engine built below.
	ts.learner = learning.New(learning.Options{Knowledge: ts.kb, Proposals: ts.db, Usage: ts.db, Queue: jobs.LearningQueue{Client: jobClient},
		Agents: learning.PinFunc(func(k spec.Kind, name string) (session.Target, error) { return ts.eng.Pin(k, name) })})
	jobs.RegisterLearning(jobReg, ts.learner)
	// As in troupe serve: memories indexed in the knowledge bases' embedded
	// store with the local embedder.
	ts.memories = memory.New(memory.Options{Store: ts.db,
		Index: memory.NewIndex(embed.NewLocal(embed.LocalOptions{Dimension: kb.LocalDimension}), ts.kb.Embedded())})
	// As in troupe serve: memories are recalled into runs' context and
	// offered as tools (memory: agentic), and extracted by a job after runs
	// (memory: automatic).
	ts.extractor = &extract.Extractor{Memories: ts.memories, Queue: extract.Queue{Client: jobClient}, Usage: ts.db,
		Targets: learning.PinFunc(func(k spec.Kind, name string) (session.Target, error) { return ts.eng.Pin(k, name) })}
	extract.Register(jobReg, ts.extractor)
	rt := &engine.Runtime{Learning: ts.learner, Memory: ts.memories, Models: reg, Env: env, Tools: engine.DefaultTools(engine.ToolOptions{Builtin: builtin.Options{Knowledge: ts.kb}}),
		// As in troupe serve: workflow steps are checkpointed in the store.
		Workflows: func(w *engine.Workflow) agent.Runner {
			return workflow.New(w, workflow.Options{Checkpoints: ts.db, Runs: ts.db})
		},
		Egress: egress.Policy{AllowedHosts: h.egress},
		// As in troupe serve: budget counters live in the store.
		Budgets: ts.db}
	ts.eng, err = engine.New(engine.Options{Dirs: []string{ts.dir}, Env: env, Runtime: rt})
	require.NoError(t, err)
	ts.kb.Configure(context.Background(), ts.eng.Current().Knowledge())
	ts.metrics = telemetry.NewMetrics()
	if h.traces == nil {
		// As in troupe serve: on SQLite, spans live in a sibling database file.
		tracesDB := ts.db
		if ts.db.Dialect() == store.DialectSQLite {
			tracesDB, err = store.Open(context.Background(), filepath.Join(t.TempDir(), "traces.db"), store.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = tracesDB.Close() })
		}
		h.traces = tracesDB.Traces()
	}
	ts.traces = h.traces
	// As in troupe serve: the run service is built beside the server, with
	// tracing (unless turned off) and metrics observing its runs.
	var observers []session.Observer
	if h.noTracing {
		ts.recorder = telemetry.NewRecorder(telemetry.RecorderOptions{Sink: discard{}}) // never fed: the runs have no tracer
	} else {
		ts.recorder = telemetry.NewRecorder(telemetry.RecorderOptions{Sink: h.traces, FlushInterval: cmp.Or(h.flush, 100*time.Millisecond)})
		tr := telemetry.NewTracer(ts.recorder).LinkEarlier(h.traces)
		if h.tracer != nil {
			h.tracer(tr)
		}
		observers = append(observers, tr)
	}
	observers = append(observers, ts.metrics)
	observers = append(observers, h.observers...)
	_, err = ts.memories.Sync(context.Background())
	require.NoError(t, err)
	observers = append(observers, ts.learner, ts.extractor)
	o := console.Options{Engine: ts.eng, Store: ts.db, Knowledge: ts.kb, Memories: ts.memories, ShutdownTimeout: 5 * time.Second,
		Traces: telemetry.PendingReader{Reader: ts.traces, Recorder: ts.recorder}, Metrics: ts.metrics, Keys: h.keys, Queue: jobClient, Learning: ts.learner, Erasers: []api.UserEraser{ts.learner, ts.memories},
		// As in troupe serve: the spec editor's writes are traced.
		Spans: ts.recorder}
	if h.limits != nil {
		o.Limits = h.limits(ts.db)
	}
	if disk != nil {
		o.Files, o.FileLimits = disk, h.fileLimits
	}
	if h.opts != nil {
		h.opts(&o)
	}
	runOpts := session.Options{Targets: ts.eng, Store: ts.db, Cancels: ts.db, Events: ts.db, Observers: observers, DrainTimeout: o.ShutdownTimeout,
		IdempotencyTTL: h.keyTTL, Requeue: jobs.Resumer{Client: jobClient}, Announcer: jobs.Approvals{Client: jobClient, Webhook: h.webhook != ""},
		Summaries: summary.Queue{Client: jobClient}, Memories: ts.memories}
	if disk != nil {
		runOpts.Files = disk // as in troupe serve: the store the console reads from
	}
	ts.runs = session.New(runOpts)
	// As in troupe serve: session summaries are folded by a job.
	summary.Register(jobReg, &summary.Worker{Store: ts.db, Targets: ts.eng})
	// As in troupe serve: background runs are jobs any replica executes.
	jobs.RegisterRuns(jobReg, ts.runs)
	var hook *jobs.Webhook
	if h.webhook != "" {
		// The test's receiver listens on loopback, allowed by name.
		hook = &jobs.Webhook{URL: h.webhook, Secret: h.webhookSecret, Client: egress.Policy{AllowedHosts: []string{"127.0.0.1"}}.Client(5 * time.Second)}
	}
	jobs.RegisterApprovals(jobReg, ts.db, ts.runs, hook)
	if h.keyTTL > 0 {
		jobs.RegisterKeyPurge(jobReg, ts.db, ts.runs.KeyCutoff, h.keyTTL)
	}
	if o.Background == nil {
		o.Background = &jobs.RunQueue{Client: jobClient, Runs: ts.runs, MaxDepth: h.maxQueued}
	}
	var rec *telemetry.Recorder
	if !h.noTracing {
		rec = ts.recorder
	}
	wireMetrics(ts.metrics, ts.eng, rec, ts.kb, jobClient)
	// As in troupe serve: triggers fire through the job engine and the run
	// queue.
	ts.triggers = trigger.New(trigger.Options{Snapshots: ts.eng, Jobs: jobClient, Runs: o.Background, Store: ts.db})
	ts.triggers.Register(jobReg)
	if o.Triggers == nil {
		o.Triggers = ts.triggers
	}
	o.Runs = ts.runs
	srv := console.New(o)
	ts.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	ts.errc = make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { ts.errc <- srv.Serve(ctx, ln) })
	wg.Go(func() { _ = ts.runs.Run(ctx) })
	var dirty <-chan struct{}
	if h.watch {
		w, err := watch.New(watch.Options{Dirs: []string{ts.dir}})
		require.NoError(t, err)
		dirty = w.C()
		wg.Go(func() { _ = w.Run(ctx) })
	}
	wg.Go(func() { _ = ts.eng.Run(ctx, dirty) })
	wg.Go(func() { _ = ts.kb.Run(ctx) })
	wg.Go(func() { _ = ts.kb.Follow(ctx) })
	updates, unsubscribe := ts.eng.Subscribe()
	wg.Go(func() { defer unsubscribe(); _ = ts.triggers.Run(ctx, ts.eng.Current(), updates) })
	wg.Go(func() { _ = jobClient.Run(ctx) })
	wg.Go(func() { _ = ts.recorder.Run(ctx) })
	var stopped sync.Once
	ts.stop = func() {
		stopped.Do(func() {
			cancel()
			wg.Wait()
			ts.eng.Close()
			require.NoError(t, ts.db.Close())
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// wireMetrics lets the metrics read, at scrape time, the state of the
// engine, the span recorder, ingestion and the job engine, as troupe serve
// wires them.
func wireMetrics(m *telemetry.Metrics, eng *engine.Engine, rec *telemetry.Recorder, k *kb.Service, q *jobs.Client) {
	m.SetReloadSource(func() (bool, time.Time, time.Duration, uint64) {
		r := eng.LastReload()
		if r == nil {
			return false, time.Time{}, 0, eng.Current().Generation()
		}
		return r.Success(), r.Time, r.Duration, eng.Current().Generation()
	})
	if rec != nil {
		m.SetSpanQueueSource(func() (int, uint64) { q, d, _ := rec.Stats(); return q, d })
	}
	m.SetIngestionSource(func() map[string]int {
		out := map[string]int{}
		for _, st := range []string{knowledge.StatusProcessing, knowledge.StatusCompleted, knowledge.StatusFailed} {
			if _, n, err := k.List(context.Background(), knowledge.DocumentQuery{Status: st, Limit: 1}); err == nil {
				out[st] = n
			}
		}
		return out
	})
	m.SetQueueSource(func() telemetry.QueueMetrics {
		cs := q.Counters()
		out := telemetry.QueueMetrics{FailedAttempts: cs.FailedAttempts, LeaseExpired: cs.LeaseExpired, Rescued: cs.Rescued}
		stats, err := q.Stats(context.Background())
		if err != nil {
			return out
		}
		for _, s := range stats {
			out.Queues = append(out.Queues, telemetry.QueueGauges{Queue: s.Queue, Depth: s.Counts.Waiting(), Running: s.Counts.Running,
				Discarded: s.Counts.Discarded, OldestAvailable: s.OldestAvailable})
		}
		return out
	})
}

// do sends a request and returns the status and body.
func (ts *testServer) do(method, path, key, contentType, body string) (int, string, http.Header) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	require.NoError(ts.t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(ts.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(ts.t, err)
	return resp.StatusCode, string(b), resp.Header
}

func (ts *testServer) json(method, path, key, body string, want int, into any) {
	ts.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	status, out, _ := ts.do(method, path, key, ct, body)
	require.Equal(ts.t, want, status, out)
	if into != nil {
		require.NoError(ts.t, json.Unmarshal([]byte(out), into), out)
	}
}

// frame is one server-sent event.
type frame struct {
	Event string
	Data  map[string]any
}

// readFrames parses an SSE stream, checking that every frame's event line
// matches the event name inside its JSON.
func readFrames(t testing.TB, r io.Reader) []frame {
	t.Helper()
	var out []frame
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur frame
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.Data), line)
		case line == "":
			if cur.Event != "" || cur.Data != nil {
				require.Equal(t, cur.Event, cur.Data["event"], "the event line and the JSON agree")
				out = append(out, cur)
			}
			cur = frame{}
		}
	}
	return out
}

func names(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Event
	}
	return out
}

// stream posts a streamed run and returns its frames.
func (ts *testServer) stream(path, key, contentType, body string) ([]frame, http.Header) {
	ts.t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.url+path, strings.NewReader(body))
	require.NoError(ts.t, err)
	req.Header.Set("Content-Type", contentType)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(ts.t, err)
	defer resp.Body.Close()
	require.Equal(ts.t, http.StatusOK, resp.StatusCode)
	require.Equal(ts.t, "text/event-stream", resp.Header.Get("Content-Type"))
	return readFrames(ts.t, resp.Body), resp.Header
}

type discard struct{}

func (discard) Write(context.Context, []telemetry.Span) error { return nil }

// clickHouseDatabase returns a new database name for a test of the
// ClickHouse sink, and drops that database when the test ends: each run of
// the suite would otherwise leave its databases on the server.
func clickHouseDatabase(tb testing.TB, addr, prefix string) string {
	tb.Helper()
	db := prefix + strings.ToLower(rand.Text()[:12])
	tb.Cleanup(func() {
		conn, err := chgo.Open(&chgo.Options{Addr: []string{addr}})
		if err != nil {
			tb.Logf("dropping ClickHouse database %s: %v", db, err)
			return
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
			tb.Logf("dropping ClickHouse database %s: %v", db, err)
		}
	})
	return db
}
