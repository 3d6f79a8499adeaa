package console_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
				client := benchClient(conc)
				body := fmt.Sprintf(`{"message":"hi","stream":%v}`, stream)
				url := ts.url + "/agents/writer/runs"
				for range conc { // warm connections
					if _, _, err := postRun(client, url, body); err != nil {
						b.Fatal(err)
					}
				}
				lat := make([]time.Duration, b.N)
				ttfe := make([]time.Duration, b.N)
				var next atomic.Int64
				var failed atomic.Int64
				b.ResetTimer()
				start := time.Now()
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
							lat[i], ttfe[i] = d, first
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if failed.Load() > 0 {
					b.Fatalf("%d failed requests", failed.Load())
				}
				slices.Sort(lat)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "runs/s")
				b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
				b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
				if stream {
					slices.Sort(ttfe)
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
			ch, err := clickhouse.Open(b.Context(), clickhouse.Options{Addr: addr, Database: "troupe_bench_" + strings.ToLower(rand.Text()[:12])})
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
	}
}

// runsPerSecond posts b.N runs with conc clients and reports runs/s and p99.
func runsPerSecond(b *testing.B, ts *testServer, conc int, body string) {
	client := benchClient(conc)
	url := ts.url + "/agents/writer/runs"
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				d, _, err := postRun(client, url, body)
				if err != nil {
					b.Error(err)
					return
				}
				lat[i] = d
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "runs/s")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
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
