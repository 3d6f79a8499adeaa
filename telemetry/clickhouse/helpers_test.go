package clickhouse

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/telemetry"
)

const addrEnv = "TROUPE_TEST_CLICKHOUSE_ADDR"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serverAddr returns the ClickHouse server of the integration tests, or skips.
func serverAddr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv(addrEnv)
	if addr == "" {
		tb.Skipf("ClickHouse integration test skipped: set %s=host:9000 (native protocol) to run it", addrEnv)
	}
	return addr
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testOptions returns options for a fresh database that is dropped when the
// test ends.
func testOptions(tb testing.TB) Options {
	tb.Helper()
	addr := serverAddr(tb)
	db := "troupe_test_" + randomSuffix()
	tb.Cleanup(func() { dropDatabase(tb, addr, db) })
	return Options{
		Addr:        addr,
		Database:    db,
		DialTimeout: 2 * time.Second,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func dropDatabase(tb testing.TB, addr, db string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Open with a throwaway table in the database being dropped.
	s, err := Open(ctx, Options{Addr: addr, Database: db, Table: "cleanup", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Errorf("cleanup: open to drop %s: %v", db, err)
		return
	}
	defer s.Close()
	if err := s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(db)); err != nil {
		tb.Errorf("cleanup: drop database %s: %v", db, err)
	}
}

func openStore(tb testing.TB, o Options) *Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, o)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// traceSpec describes a realistic trace for tests.
type traceSpec struct {
	RunID, SessionID, UserID, AgentID, TeamID string
	Start                                     time.Time
	Input                                     string
	Fail                                      bool // the run (root) failed
	ToolFails                                 bool // one tool call failed
}

// buildTrace makes a team run: the root run span, model and tool spans, a
// knowledge search, a member's run with its own model call, and the store
// span. Times carry nanoseconds and a non-UTC zone.
func buildTrace(ts traceSpec) []telemetry.Span {
	traceID := telemetry.NewTraceID()
	rootID := telemetry.NewSpanID()
	at := func(ms int) time.Time { return ts.Start.Add(time.Duration(ms)*time.Millisecond + 123*time.Nanosecond) }
	base := func(name, kind, parent string, from, to int) telemetry.Span {
		return telemetry.Span{
			TraceID: traceID, SpanID: telemetry.NewSpanID(), ParentID: parent,
			Name: name, Kind: kind, Start: at(from), End: at(to), Status: telemetry.StatusOK,
			RunID: ts.RunID, SessionID: ts.SessionID, UserID: ts.UserID, AgentID: ts.AgentID, TeamID: ts.TeamID,
		}
	}
	root := base("team.run support", telemetry.KindRun, "", 0, 5000)
	root.SpanID = rootID
	root.Start = ts.Start // exact start
	root.Attributes = map[string]string{
		telemetry.InputAttribute: ts.Input,
		"spec_version":           "3",
		"mode":                   "coordinate",
	}
	if ts.Fail {
		root.Status = telemetry.StatusError
		root.StatusMessage = "ModelError: upstream returned 529 overloaded"
		root.Attributes["error_class"] = "ModelError"
	}

	model1 := base("model gpt-4o", telemetry.KindModel, rootID, 10, 900)
	model1.InputTokens, model1.OutputTokens = 1234, 56
	model1.Attributes = map[string]string{"model": "gpt-4o", "provider": "openai"}

	tool := base("tool lookup_order", telemetry.KindTool, rootID, 910, 1100)
	tool.Attributes = map[string]string{
		"tool":      "lookup_order",
		"arguments": `{"order_id":"A-1001","note":"it's \"quoted\"\\ and\nmultiline ünïcödé"}`,
		"result":    `{"status":"shipped"}`,
	}
	if ts.ToolFails {
		tool.Status = telemetry.StatusError
		tool.StatusMessage = "ToolError: order service timed out"
		tool.Attributes["error_class"] = "ToolError"
	}

	kn := base("knowledge_search", telemetry.KindKnowledge, rootID, 1110, 1300)
	kn.Attributes = map[string]string{"tool": "knowledge_search", "query": "return policy", "results": "3"}

	memberRunID := "member-" + ts.RunID
	member := base("agent.run researcher", telemetry.KindRun, rootID, 1310, 4000)
	member.RunID, member.AgentID = memberRunID, "researcher"
	member.Attributes = map[string]string{telemetry.InputAttribute: "find the return policy for A-1001"}

	memberModel := base("model claude-sonnet", telemetry.KindModel, member.SpanID, 1320, 3900)
	memberModel.RunID, memberModel.AgentID = memberRunID, "researcher"
	memberModel.InputTokens, memberModel.OutputTokens = 800, 400
	memberModel.Attributes = map[string]string{"model": "claude-sonnet", "provider": "anthropic"}

	model2 := base("model gpt-4o", telemetry.KindModel, rootID, 4010, 4900)
	model2.InputTokens, model2.OutputTokens = 2100, 300
	model2.Attributes = map[string]string{"model": "gpt-4o", "provider": "openai"}

	store := base("store run", telemetry.KindStore, rootID, 4910, 4990)
	// No attributes at all.

	return []telemetry.Span{root, model1, tool, kn, member, memberModel, model2, store}
}

// normalize returns spans as GetTrace gives them back: UTC times, nil for
// empty attribute maps, ordered by start then span id.
func normalize(spans []telemetry.Span) []telemetry.Span {
	out := make([]telemetry.Span, len(spans))
	for i, sp := range spans {
		sp.Start, sp.End = sp.Start.UTC(), sp.End.UTC()
		if sp.Start.Equal(time.Unix(0, 0)) {
			sp.Start = time.Time{}
		}
		if len(sp.Attributes) == 0 {
			sp.Attributes = nil
		}
		out[i] = sp
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].SpanID < out[j].SpanID
	})
	return out
}

// proxy is a TCP proxy in front of the server that a test can cut (close the
// listener and every connection: "connection refused"), blackhole (accept
// but never answer: a hung server) and restore.
type proxy struct {
	tb     testing.TB
	target string
	addr   string

	mu        sync.Mutex
	thawed    *sync.Cond // signalled when frozen turns false or on cut
	ln        net.Listener
	conns     map[net.Conn]struct{}
	blackhole bool
	frozen    bool // established connections stop forwarding
	resetGen  int  // connections of this generation reset when next used; -1 for none
	gen       int  // incremented by cut and resetOnUse
	wg        sync.WaitGroup
}

func newProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	p := &proxy{tb: tb, target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}, resetGen: -1}
	p.thawed = sync.NewCond(&p.mu)
	p.start(ln)
	tb.Cleanup(p.close)
	return p
}

func (p *proxy) start(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.handle(c)
		}
	}()
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *proxy) handle(client net.Conn) {
	if !p.track(client) {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	hole := p.blackhole
	p.mu.Unlock()
	if hole {
		return // held open, never answered, closed by cut
	}
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil || !p.track(server) {
		if server != nil {
			_ = server.Close()
		}
		_ = client.Close()
		p.untrack(client)
		return
	}
	p.mu.Lock()
	gen := p.gen
	p.mu.Unlock()
	pipe := func(dst, src net.Conn) {
		defer p.wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && src == client && p.resetting(gen) {
				// An abortive close: the client sees a reset, not an
				// orderly end, and only once it has sent its query.
				_ = client.(*net.TCPConn).SetLinger(0)
				break
			}
			if n > 0 {
				if !p.waitThawed(gen) {
					break
				}
				if _, err := dst.Write(buf[:n]); err != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = dst.Close()
		_ = src.Close()
		p.untrack(dst)
		p.untrack(src)
	}
	p.wg.Add(2)
	go pipe(server, client)
	go pipe(client, server)
}

// waitThawed blocks while the proxy is frozen; false if the connections of
// generation gen were cut meanwhile.
func (p *proxy) waitThawed(gen int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.frozen && p.gen == gen {
		p.thawed.Wait()
	}
	return p.gen == gen
}

// resetOnUse makes every established connection reset (RST) the next time
// the client sends on it, as a server that restarted or a proxy that dropped
// idle connections looks to a client whose pooled connection passed its
// liveness check. Connections made afterwards are unaffected.
func (p *proxy) resetOnUse() {
	p.mu.Lock()
	p.resetGen = p.gen
	p.gen++
	p.mu.Unlock()
}

func (p *proxy) resetting(gen int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resetGen == gen
}

// freeze makes established connections stop forwarding (a server that
// stalls mid-query); unfreeze resumes them.
func (p *proxy) freeze(on bool) {
	p.mu.Lock()
	p.frozen = on
	p.mu.Unlock()
	p.thawed.Broadcast()
}

// cut closes the listener and every connection.
func (p *proxy) cut() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.gen++
	p.mu.Unlock()
	p.thawed.Broadcast()
	if ln != nil {
		_ = ln.Close()
	}
	for c := range conns {
		_ = c.Close()
	}
}

// restore listens again on the same address, forwarding (or, with
// blackhole, swallowing) connections.
func (p *proxy) restore(blackhole bool) {
	p.tb.Helper()
	p.cut()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(p.tb, err, "proxy: listen again on %s", p.addr)
	p.mu.Lock()
	p.blackhole = blackhole
	p.mu.Unlock()
	p.start(ln)
}

func (p *proxy) close() {
	p.cut()
	p.wg.Wait()
}
