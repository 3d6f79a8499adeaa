package console_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/telemetry/clickhouse"
)

// proxy forwards TCP connections to a target until cut; cutting closes every
// open connection and refuses new ones, like a server that went away.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	return p
}

func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestClickHouseOutage stops ClickHouse (by cutting its connection) while
// runs go on: runs keep succeeding at the same latency, dropped spans are
// counted, and spans arrive again once the server is back.
func TestClickHouseOutage(t *testing.T) {
	addr := os.Getenv("TROUPE_TEST_CLICKHOUSE_ADDR")
	if addr == "" {
		t.Skip("set TROUPE_TEST_CLICKHOUSE_ADDR (e.g. 127.0.0.1:9000) to run the ClickHouse outage test")
	}
	p := newProxy(t, addr)
	ch, err := clickhouse.Open(t.Context(), clickhouse.Options{Addr: p.ln.Addr().String(), Database: clickHouseDatabase(t, addr, "troupe_outage_"), DialTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ch.Close() })
	ts := startServer(t, withTraces(ch))
	client := benchClient(4)
	run := func() time.Duration {
		d, _, err := postRun(client, ts.url+"/agents/writer/runs", `{"message":"hello","stream":false}`)
		require.NoError(t, err, "runs never depend on the trace sink")
		return d
	}
	measure := func(n int) time.Duration {
		var lat []time.Duration
		for range n {
			lat = append(lat, run())
		}
		slices.Sort(lat)
		return lat[len(lat)/2]
	}
	before := measure(50)
	require.Eventually(t, func() bool { _, _, w := ts.recorder.Stats(); return w > 0 }, 5*time.Second, 10*time.Millisecond)

	p.setCut(true)
	during := measure(200)
	require.Eventually(t, func() bool {
		run()
		_, dropped, _ := ts.recorder.Stats()
		return dropped > 0
	}, 20*time.Second, 50*time.Millisecond, "spans written during the outage are dropped and counted")
	require.Less(t, during, before+5*time.Millisecond, "run latency does not depend on the sink (before %v, during %v)", before, during)

	p.setCut(false)
	_, _, writtenBefore := ts.recorder.Stats()
	require.Eventually(t, func() bool {
		run()
		_, _, w := ts.recorder.Stats()
		return w > writtenBefore
	}, 60*time.Second, 100*time.Millisecond, "after the server returns, new spans arrive")
	// A run made now has its trace read back from ClickHouse, and the
	// dropped spans show on the exported counter.
	status, _, h := ts.do(http.MethodPost, "/agents/writer/runs", "", "application/json", `{"message":"after the outage","stream":false}`)
	require.Equal(t, http.StatusOK, status)
	traceID := h.Get("X-Trace-Id")
	require.NotEmpty(t, traceID)
	require.Eventually(t, func() bool {
		status, _, _ := ts.do(http.MethodGet, "/traces/"+traceID, "", "", "")
		return status == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "the new run's trace is stored")
	_, metrics, _ := ts.do(http.MethodGet, "/metrics/prometheus", "", "", "")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(metrics))
	require.NoError(t, err)
	require.Positive(t, families["troupe_trace_spans_dropped_total"].GetMetric()[0].GetCounter().GetValue())
	t.Logf("p50 run latency: before %v, during the outage %v", before, during)
}
