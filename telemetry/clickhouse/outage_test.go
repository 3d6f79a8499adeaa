package clickhouse

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/telemetry"
)

// TestOutage puts a TCP proxy between the Store and the server and cuts it:
// writes fail fast while the server is unreachable or hung, and succeed
// again, on the same Store, once it is back.
func TestOutage(t *testing.T) {
	o := testOptions(t)
	p := newProxy(t, o.Addr)
	o.Addr = p.addr
	o.DialTimeout = time.Second
	s := openStore(t, o)

	write := func(ctx context.Context, run string) (time.Duration, error) {
		start := time.Now()
		err := s.Write(ctx, buildTrace(traceSpec{RunID: run, UserID: "outage", Start: time.Now()}))
		return time.Since(start), err
	}
	count := func() int {
		_, total, err := s.ListTraces(ctxT(t), telemetry.TraceQuery{UserID: "outage"})
		require.NoError(t, err)
		return total
	}

	// Healthy: pooled connections exist.
	for i := 0; i < 3; i++ {
		_, err := write(ctxT(t), "before")
		require.NoError(t, err)
	}

	// Cut: pooled connections are dead, new ones refused.
	p.cut()
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		took, err := write(ctx, "during-cut")
		cancel()
		require.Error(t, err)
		assert.Less(t, took, 2*time.Second, "write during a cut must fail fast: %v", err)
		t.Logf("cut: write failed after %v: %v", took.Round(time.Millisecond), err)
	}
	_, _, err := s.ListTraces(ctxT(t), telemetry.TraceQuery{})
	require.Error(t, err)

	// Back: the same Store writes again, first try.
	p.restore(false)
	_, err = write(ctxT(t), "after-cut")
	require.NoError(t, err)
	assert.Equal(t, 4, count())

	// Hung server (accepts, never answers): bounded by the ctx, or by the
	// dial timeout for the handshake, whichever comes first.
	p.restore(true)
	for _, timeout := range []time.Duration{300 * time.Millisecond, 5 * time.Second} {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		took, err := write(ctx, "during-hang")
		cancel()
		require.Error(t, err)
		limit := min(timeout, o.DialTimeout) + 500*time.Millisecond
		assert.Less(t, took, limit, "write to a hung server took %v: %v", took, err)
		t.Logf("hang (ctx %v): write failed after %v: %v", timeout, took.Round(time.Millisecond), err)
	}

	// Back again.
	p.restore(false)
	_, err = write(ctxT(t), "after-hang")
	require.NoError(t, err)
	assert.Equal(t, 5, count())
}

// TestOutageServerStalls freezes established connections: the server took
// the connection and the query but answers nothing. Writes and reads end with
// their ctx, deadline or plain cancellation, and work again afterwards.
func TestOutageServerStalls(t *testing.T) {
	o := testOptions(t)
	p := newProxy(t, o.Addr)
	o.Addr = p.addr
	s := openStore(t, o)
	require.NoError(t, s.Write(ctxT(t), buildTrace(traceSpec{RunID: "a", Start: time.Now()})))

	p.freeze(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	err := s.Write(ctx, buildTrace(traceSpec{RunID: "b", Start: time.Now()}))
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
	t.Logf("stalled, deadline: %v after %v", err, time.Since(start).Round(time.Millisecond))

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	_, _, err = s.ListTraces(ctx, telemetry.TraceQuery{})
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), time.Second)
	t.Logf("stalled, cancel: %v after %v", err, time.Since(start).Round(time.Millisecond))

	p.freeze(false)
	require.NoError(t, s.Write(ctxT(t), buildTrace(traceSpec{RunID: "c", Start: time.Now()})))
	list, total, err := s.ListTraces(ctxT(t), telemetry.TraceQuery{})
	require.NoError(t, err)
	// "b" may or may not have reached the server before the stall.
	assert.Contains(t, []int{2, 3}, total)
	assert.Contains(t, runIDs(list), "c")
}

// TestOutageMidSession cuts established, idle connections only (the listener
// stays up): the next write notices the dead connection and redials.
func TestOutageMidSession(t *testing.T) {
	o := testOptions(t)
	p := newProxy(t, o.Addr)
	o.Addr = p.addr
	s := openStore(t, o)
	ctx := ctxT(t)
	require.NoError(t, s.Write(ctx, buildTrace(traceSpec{RunID: "a", Start: time.Now()})))
	p.restore(false) // drops every connection, listens again at once
	require.NoError(t, s.Write(ctx, buildTrace(traceSpec{RunID: "b", Start: time.Now()})))
	got, total, err := s.ListTraces(ctx, telemetry.TraceQuery{})
	require.NoError(t, err)
	assert.Equal(t, 2, total)
	assert.Len(t, got, 2)
}

// TestOutageDroppedAfterCheck has the server side drop pooled connections
// in the window the driver's liveness check cannot see: the connection looks
// healthy when taken from the pool and is reset once the query is on it.
// Writes and reads retry once on a fresh connection; nothing is written
// twice.
func TestOutageDroppedAfterCheck(t *testing.T) {
	o := testOptions(t)
	p := newProxy(t, o.Addr)
	o.Addr = p.addr
	s := openStore(t, o)
	ctx := ctxT(t)
	for _, run := range []string{"a", "b", "c"} {
		require.NoError(t, s.Write(ctx, buildTrace(traceSpec{RunID: run, Start: time.Now()})))
		p.resetOnUse()
	}
	got, total, err := s.ListTraces(ctx, telemetry.TraceQuery{})
	require.NoError(t, err)
	assert.Equal(t, 3, total)
	assert.ElementsMatch(t, []string{"a", "b", "c"}, runIDs(got))
	p.resetOnUse()
	_, err = s.GetTrace(ctx, got[0].TraceID)
	require.NoError(t, err)
}

// TestOpenWithoutServerFailsFast needs no server: nothing listens on the
// port.
func TestOpenWithoutServerFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	start := time.Now()
	_, err = Open(context.Background(), Options{Addr: addr, DialTimeout: time.Second})
	require.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Contains(t, err.Error(), addr)
}

// TestOpenHungServerBoundedByContext needs no server either: a listener that
// never answers the handshake.
func TestOpenHungServerBoundedByContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	defer func() { _ = ln.Close(); <-done }()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Open(ctx, Options{Addr: ln.Addr().String(), DialTimeout: 10 * time.Second})
	require.Error(t, err)
	assert.Less(t, time.Since(start), 2*time.Second)
}
