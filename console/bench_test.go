package console_test

import (
	"bufio"
	"context"
	"fmt"
	"github.com/troupehq/troupe/engine/memory"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
	"github.com/troupehq/troupe/telemetry/clickhouse"
)

// benchClient keeps enough idle connections for the concurrency under test,
// as a load generator or a reverse proxy would.
func benchClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: conc * 2, MaxIdleConnsPerHost: conc * 2, IdleConnTimeout: time.Minute}}
}

func postRun(client *http.Client, url, body string) (time.Duration, time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var first time.Duration
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		r := bufio.NewReader(resp.Body)
		line, err := r.ReadString('\n')
		if strings.HasPrefix(line, "id: ") {
			line, err = r.ReadString('\n') // the frame's event line follows its id
		}
		if err != nil || !strings.HasPrefix(line, "event: RunStarted") {
			return 0, 0, fmt.Errorf("first line %q: %v", line, err)
		}
		first = time.Since(start)
		rest, _ := io.ReadAll(r)
		if !strings.Contains(string(rest), "event: RunCompleted") {
			return 0, 0, fmt.Errorf("no RunCompleted in %q", rest)
		}
	} else if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, 0, err
	}
	return time.Since(start), first, nil
}

// BenchmarkHTTPRuns measures the platform's overhead per run: HTTP in, a new
// session per run persisted to SQLite, the openai provider calling an
// OpenAI-wire fake over loopback that answers at once, HTTP out. It reports
// runs per second and latency percentiles at several concurrencies.
func BenchmarkHTTPRuns(b *testing.B) {
	for _, stream := range []bool{false, true} {
		for _, conc := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("stream=%v/c=%d", stream, conc), func(b *testing.B) {
				ts := startServer(b)
				ts.v.quiet = true
				body := fmt.Sprintf(`{"message":"hi","stream":%v}`, stream)
				load := postRuns(b, ts, conc, body)
				lat, ttfe := load.lat, load.ttfe
				b.ReportMetric(float64(b.N)/load.elapsed.Seconds(), "runs/s")
				b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
				b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
				if stream {
					b.ReportMetric(ms(ttfe[len(ttfe)/2]), "ttfe-p50-ms")
				}
			})
		}
	}
}

// BenchmarkTracingOverhead compares run throughput at concurrency 1, 8 and 32 with
// tracing off and on (SQL sink, and ClickHouse when configured).
func BenchmarkTracingOverhead(b *testing.B) {
	sinks := map[string]func(b *testing.B) []serverOption{
		"off": func(*testing.B) []serverOption { return []serverOption{withoutTracing()} },
		"sql": func(*testing.B) []serverOption { return nil },
		// discard isolates Troupe's own tracing cost (building, queueing and
		// batching spans) from the sink's, which shares this machine's cores.
		"discard": func(*testing.B) []serverOption { return []serverOption{withTraces(discardReader{})} },
	}
	if addr := os.Getenv("TROUPE_TEST_CLICKHOUSE_ADDR"); addr != "" {
		sinks["clickhouse"] = func(b *testing.B) []serverOption {
			ch, err := clickhouse.Open(b.Context(), clickhouse.Options{Addr: addr, Database: clickHouseDatabase(b, addr, "troupe_bench_")})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = ch.Close() })
			return []serverOption{withTraces(ch)}
		}
	}
	for _, name := range []string{"off", "discard", "sql", "clickhouse"} {
		setup, ok := sinks[name]
		if !ok {
			continue
		}
		for _, conc := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("%s/c=%d", name, conc), func(b *testing.B) {
				ts := startServer(b, setup(b)...)
				ts.v.quiet = true
				runsPerSecond(b, ts, conc, `{"message":"hi","stream":false}`)
			})
		}
		// A model that takes 20ms, as fast as real ones get: throughput is
		// bound by the model, and tracing only shows in CPU per run.
		b.Run(name+"/model=20ms/c=32", func(b *testing.B) {
			ts := startServer(b, setup(b)...)
			ts.v.quiet = true
			runsPerSecond(b, ts, 32, `{"message":"sleep 20ms","stream":false}`)
		})
	}
}

// runsPerSecond posts b.N runs with conc clients and reports runs/s, p99 and
// CPU per run.
func runsPerSecond(b *testing.B, ts *testServer, conc int, body string) {
	load := postRuns(b, ts, conc, body)
	b.ReportMetric(float64(b.N)/load.elapsed.Seconds(), "runs/s")
	b.ReportMetric(ms(load.lat[len(load.lat)*99/100]), "p99-ms")
	// CPU per run (client, server and vendor fake: this process) varies
	// less than throughput on a shared machine, and shows what a sink
	// costs even when the cores are not saturated.
	b.ReportMetric(float64(load.cpu.Microseconds())/float64(b.N), "cpu-µs/run")
}

// runLoad is what postRuns measured: latencies and times to the first event
// (streams only), each sorted, and the wall and CPU time of the whole load.
type runLoad struct {
	lat, ttfe    []time.Duration
	elapsed, cpu time.Duration
}

// postRuns posts b.N runs of the writer agent with conc clients, after one
// run per client to open their connections, and stops the benchmark timer
// after the last. A failed run fails the benchmark.
func postRuns(b *testing.B, ts *testServer, conc int, body string) runLoad {
	return postRunsTo(b, ts, "/agents/writer/runs", conc, body)
}

// postRunsTo is postRuns against the run route path.
func postRunsTo(b *testing.B, ts *testServer, path string, conc int, body string) runLoad {
	client := benchClient(conc)
	url := ts.url + path
	for range conc {
		if _, _, err := postRun(client, url, body); err != nil {
			b.Fatal(err)
		}
	}
	load := runLoad{lat: make([]time.Duration, b.N), ttfe: make([]time.Duration, b.N)}
	var next, failed atomic.Int64
	b.ResetTimer()
	start, cpu := time.Now(), processCPU()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				d, first, err := postRun(client, url, body)
				if err != nil {
					failed.Add(1)
					b.Error(err)
					return
				}
				load.lat[i], load.ttfe[i] = d, first
			}
		})
	}
	wg.Wait()
	load.elapsed, load.cpu = time.Since(start), processCPU()-cpu
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d failed requests", failed.Load())
	}
	slices.Sort(load.lat)
	slices.Sort(load.ttfe)
	return load
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOverheadOverSlowModel measures the latency Troupe adds to a model
// that takes 200ms to answer, at concurrency 1.
func BenchmarkOverheadOverSlowModel(b *testing.B) {
	ts := startServer(b)
	ts.v.quiet = true
	client := benchClient(1)
	url := ts.url + "/agents/writer/runs"
	body := `{"message":"sleep 200ms","stream":false}`
	var added []time.Duration
	for b.Loop() {
		d, _, err := postRun(client, url, body)
		if err != nil {
			b.Fatal(err)
		}
		added = append(added, d-200*time.Millisecond)
	}
	slices.Sort(added)
	b.ReportMetric(ms(added[len(added)/2]), "added-p50-ms")
	b.ReportMetric(ms(added[len(added)-1]), "added-max-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// discardReader is a sink that drops spans and a reader with no traces.
type discardReader struct{ discard }

func (discardReader) ListTraces(context.Context, telemetry.TraceQuery) ([]telemetry.TraceSummary, int, error) {
	return nil, 0, nil
}

func (discardReader) GetTrace(context.Context, string) ([]telemetry.Span, error) { return nil, nil }

// consoleFixture is a server whose store holds 10,000 sessions (one run each,
// with a tool call, over the last hour) and 100,000 spans (10,000 traces of
// 10 spans), shared by the console benchmarks.
type consoleFixture struct {
	ts                         *testServer
	sessionID, traceID, target string
}

var (
	consoleOnce sync.Once
	consoleFix  consoleFixture
)

func seedConsole(b *testing.B) consoleFixture {
	consoleOnce.Do(func() {
		ts := startServer(b)
		ctx := context.Background()
		const sessions, spansPerTrace = 10_000, 10
		now := time.Now().UTC()
		step := time.Hour / sessions
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(64)
		traces := make([]telemetry.Span, 0, sessions*spansPerTrace)
		var mu sync.Mutex
		for i := range sessions {
			g.Go(func() error {
				created := now.Add(-time.Hour + time.Duration(i)*step)
				s := &store.Session{ID: fmt.Sprintf("s%05d", i), Type: "agent", ComponentID: "helpdesk", UserID: fmt.Sprint("user", i%100)}
				r := &store.Run{ID: fmt.Sprintf("r%05d", i), Input: fmt.Sprintf("question %d: what is 6*7?", i), CreatedAt: created}
				if err := ts.db.StartRun(gctx, s, r); err != nil {
					return err
				}
				r.Status, r.Content, r.UpdatedAt = event.StatusCompleted, "The answer is 42.", created.Add(time.Duration(200+i%800)*time.Millisecond)
				if i%10 == 3 {
					r.Status, r.Error = event.StatusError, "model unavailable"
				}
				r.Tools = []event.ToolCall{{ID: "call_1", Name: "calculator", Args: map[string]any{"expression": "6*7"}, Result: "42", Duration: time.Millisecond}}
				r.Metrics = event.Metrics{InputTokens: 120, OutputTokens: 30, TotalTokens: 150, Duration: r.UpdatedAt.Sub(created), ToolCalls: 1}
				if err := ts.db.FinishRun(gctx, r); err != nil {
					return err
				}
				tr := telemetry.NewTrace(telemetry.RunInfo{Kind: "agent", Target: "helpdesk", RunID: r.ID, SessionID: s.ID, UserID: s.UserID,
					Input: r.Input, Model: "echo", Provider: "echo"}, telemetry.Parent{}, created, 0)
				for j := range spansPerTrace - 1 {
					tr.StoreSpan(fmt.Sprint("step ", j), created.Add(time.Duration(j)*10*time.Millisecond), created.Add(time.Duration(j+1)*10*time.Millisecond), nil)
				}
				spans := tr.Finish(r.UpdatedAt, telemetry.StatusOK, "", "", r.Metrics)
				mu.Lock()
				traces = append(traces, spans...)
				mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		// One long conversation: 1,000 turns in one session, of which the
		// pages show the latest.
		long := &store.Session{ID: "long", Type: "agent", ComponentID: "helpdesk", UserID: "user1"}
		for i := range 1000 {
			created := now.Add(-time.Hour + time.Duration(i)*time.Second)
			r := &store.Run{ID: fmt.Sprintf("long%04d", i), Input: fmt.Sprintf("turn %d: and then?", i), CreatedAt: created}
			if err := ts.db.StartRun(ctx, long, r); err != nil {
				b.Fatal(err)
			}
			r.Status, r.Content, r.UpdatedAt = event.StatusCompleted, "Then the next step.", created.Add(300*time.Millisecond)
			r.Messages = []model.Message{{Role: model.RoleUser, Content: r.Input}, {Role: model.RoleAssistant, Content: r.Content}}
			if err := ts.db.FinishRun(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		for start := 0; start < len(traces); start += 1000 {
			if err := ts.traces.Write(ctx, traces[start:min(start+1000, len(traces))]); err != nil {
				b.Fatal(err)
			}
		}
		consoleFix = consoleFixture{ts: ts, sessionID: "s05000", traceID: traces[len(traces)/2].TraceID, target: "helpdesk"}
	})
	if consoleFix.ts == nil {
		b.Fatal("seeding the console fixture failed")
	}
	return consoleFix
}

// BenchmarkConsolePages renders every console page over HTTP against the
// seeded store and reports the p99 server time (the target is 20 ms).
func BenchmarkConsolePages(b *testing.B) {
	fx := seedConsole(b)
	client := benchClient(1)
	for _, p := range []struct{ name, path string }{
		{"overview", "/"},
		{"agents", "/ui/agents"},
		{"agent", "/ui/agents/helpdesk"},
		{"agent+session", "/ui/agents/helpdesk?session=" + fx.sessionID},
		{"sessions", "/ui/sessions"},
		{"sessions-search", "/ui/sessions?q=question+42"},
		{"sessions-page-300", "/ui/sessions?page=300"},
		{"session", "/ui/sessions/" + fx.sessionID},
		{"session-1000-runs", "/ui/sessions/long"},
		{"agent+session-1000-runs", "/ui/agents/helpdesk?session=long"},
		{"traces", "/ui/traces"},
		{"traces-filtered", "/ui/traces?target=helpdesk&status=OK&since=1h"},
		{"trace", "/ui/traces/" + fx.traceID},
		{"knowledge", "/ui/knowledge"},
		{"triggers", "/ui/triggers"},
		{"spend-month", "/ui/spend?window=month"},
		{"budgets", "/ui/budgets"},
		{"config", "/ui/config"},
	} {
		b.Run(p.name, func(b *testing.B) {
			var lat []time.Duration
			size := 0
			for b.Loop() {
				start := time.Now()
				resp, err := client.Get(fx.ts.url + p.path)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: status %d", p.path, resp.StatusCode)
				}
				lat = append(lat, time.Since(start))
				size = int(n)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(size), "bytes")
		})
	}
}

// BenchmarkBackgroundRuns measures background runs, on SQLite and (with
// TROUPE_TEST_POSTGRES_DSN) PostgreSQL, with the instant OpenAI-wire fake:
//
//   - latency: one run at a time, the time from the run's enqueueing (its
//     PENDING record) to a worker starting it (claimed, about to call the
//     model), p50 and p99;
//   - throughput: b.N runs at concurrency 32 as foreground runs, then as
//     background runs (submitted by 32 clients, timed until the last one
//     finished) at the replica's default of 8 executing at once; it reports
//     both rates and background/foreground.
func BenchmarkBackgroundRuns(b *testing.B) {
	dbs := map[string]func(b *testing.B) string{"sqlite": func(b *testing.B) string { return "" }}
	if dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN"); dsn != "" {
		dbs["postgres"] = func(b *testing.B) string { return pgSchema(b, dsn) }
	}
	for _, name := range []string{"sqlite", "postgres"} {
		db, ok := dbs[name]
		if !ok {
			continue
		}
		b.Run("db="+name+"/latency", func(b *testing.B) {
			obs := newStartObserver()
			ts := startServer(b, withDatabase(db(b)), withBackground(8, 0), withObserver(obs))
			ts.v.quiet = true
			client := benchClient(1)
			submit := func() {
				if err := postBackground(client, ts.url+"/agents/writer/runs"); err != nil {
					b.Fatal(err)
				}
				<-obs.finished
			}
			submit() // warm up: connections, prepared statements, the worker
			obs.reset()
			b.ResetTimer()
			for range b.N {
				submit()
			}
			b.StopTimer()
			lat := obs.latencies()
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		})
		b.Run("db="+name+"/throughput/c=32", func(b *testing.B) {
			obs := newStartObserver()
			ts := startServer(b, withDatabase(db(b)), withBackground(8, 0), withObserver(obs))
			ts.v.quiet = true
			fg := postRuns(b, ts, 32, `{"message":"hi","stream":false}`)
			fgRate := float64(b.N) / fg.elapsed.Seconds()

			client := benchClient(32)
			obs.reset()
			var next atomic.Int64
			start := time.Now()
			var g errgroup.Group
			for range 32 {
				g.Go(func() error {
					for next.Add(1) <= int64(b.N) {
						if err := postBackground(client, ts.url+"/agents/writer/runs"); err != nil {
							return err
						}
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			for range b.N {
				<-obs.finished
			}
			bgRate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(fgRate, "fg-runs/s")
			b.ReportMetric(bgRate, "bg-runs/s")
			b.ReportMetric(bgRate/fgRate, "bg/fg")
		})
	}
}

func postBackground(client *http.Client, url string) error {
	resp, err := client.Post(url, "application/json", strings.NewReader(`{"message":"hi","background":true}`))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// startObserver records, for each top-level run, how long after its record
// was created it started executing, and signals each run's end.
type startObserver struct {
	mu       sync.Mutex
	waits    []time.Duration
	finished chan struct{}
}

func newStartObserver() *startObserver {
	return &startObserver{finished: make(chan struct{}, 1<<20)}
}

func (o *startObserver) RunStarted(r *session.Run, _ session.Link) session.RunObserver {
	if r.ParentRunID != "" {
		return nil
	}
	wait := time.Since(r.CreatedAt)
	o.mu.Lock()
	o.waits = append(o.waits, wait)
	o.mu.Unlock()
	return o
}

func (o *startObserver) RunInterrupted(*session.Run)                   {}
func (o *startObserver) Event(event.Event)                             {}
func (o *startObserver) StoreSpan(string, time.Time, time.Time, error) {}
func (o *startObserver) RunFinished(*session.Run, string)              { o.finished <- struct{}{} }

func (o *startObserver) reset() {
	o.mu.Lock()
	o.waits = o.waits[:0]
	o.mu.Unlock()
	for len(o.finished) > 0 {
		<-o.finished
	}
}

func (o *startObserver) latencies() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	lat := slices.Clone(o.waits)
	slices.Sort(lat)
	return lat
}

// BenchmarkMemorySummariesOnOff measures what memory and summaries cost a
// run's caller: the same agent without and with `memory: automatic` and
// `summary: true`, for a user with 50 memories, in a session with history,
// back to back. With them on, a run recalls the user's memories before the
// model call (the only foreground work) and leaves two jobs behind (the
// extraction, and a summary when the session crosses its threshold), which
// run in the background on the same two cores. model=instant is the echo
// model (no latency: the background work competes with the next run for
// the CPU and SQLite's single writer); model=20ms is an OpenAI-wire server
// answering every call, extraction included, in 20 ms, as a fast real model
// would.
func BenchmarkMemorySummariesOnOff(b *testing.B) {
	// The harness's fixture defines the vendor model (VENDOR_URL).
	specs := "kind: Agent\nname: mem-off-instant\nmodel: echo\n---\n" +
		"kind: Agent\nname: mem-on-instant\nmodel: echo\nmemory: automatic\nsummary: true\n---\n" +
		"kind: Agent\nname: mem-off-20ms\nmodel: vendor\n---\n" +
		"kind: Agent\nname: mem-on-20ms\nmodel: vendor\nmemory: automatic\nsummary: true\n"
	ts := startServer(b, withSpecs(specs))
	ts.v.quiet = true
	for i := range 50 {
		_, err := ts.memories.Add(b.Context(), &memory.Memory{UserID: "u1", Memory: fmt.Sprintf("The user fact number %d is about topic %d.", i, i%7), Topics: []string{"t"}})
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, lat := range []string{"instant", "20ms"} {
		for _, conc := range []int{1, 32} {
			for _, name := range []string{"off", "on"} {
				b.Run(fmt.Sprintf("model=%s/c=%d/%s", lat, conc, name), func(b *testing.B) {
					ts.v.delay, ts.v.reply = 0, ""
					if lat == "20ms" {
						// A fast model with answers of a realistic size.
						ts.v.delay = 20 * time.Millisecond
						ts.v.reply = strings.Repeat("A short answer of about a hundred tokens. ", 10)
					}
					path := "/agents/mem-" + name + "-" + lat + "/runs"
					var first runJSON
					ts.json(http.MethodPost, path, "", `{"message":"hello","stream":false,"user_id":"u1"}`, http.StatusOK, &first)
					body := `{"message":"what about topic 3?","stream":false,"user_id":"u1","session_id":"` + first.SessionID + `"}`
					load := postRunsTo(b, ts, path, conc, body)
					lat := load.lat
					b.ReportMetric(float64(b.N)/load.elapsed.Seconds(), "runs/s")
					b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
					b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
					// Let this round's background jobs finish before the
					// next sub-benchmark measures.
					waitJobsIdleFor(b, ts, 5*time.Minute)
				})
			}
		}
	}
}
