package clickhouse

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/telemetry"
)

// TestLazyWithoutServer needs no server: nothing listens on the address.
func TestLazyWithoutServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	l, err := OpenLazy(Options{Addr: addr, DialTimeout: time.Second})
	require.NoError(t, err, "opening never dials")
	defer l.Close()
	ctx := context.Background()
	err = l.Connect(ctx)
	require.ErrorIs(t, err, telemetry.ErrUnavailable)
	require.Contains(t, err.Error(), addr)

	// Within the backoff, calls fail at once without dialing.
	start := time.Now()
	require.ErrorIs(t, l.Write(ctx, []telemetry.Span{{TraceID: "t", SpanID: "s"}}), telemetry.ErrUnavailable)
	_, _, err = l.ListTraces(ctx, telemetry.TraceQuery{})
	require.ErrorIs(t, err, telemetry.ErrUnavailable)
	_, err = l.GetTrace(ctx, "t")
	require.ErrorIs(t, err, telemetry.ErrUnavailable)
	require.Less(t, time.Since(start), 50*time.Millisecond)

	_, err = OpenLazy(Options{Addr: addr, Database: "no-dashes!"})
	require.Error(t, err, "bad options fail at once")
}

// TestLazyConnectsWhenTheServerComesUp starts with the server unreachable
// (behind a cut proxy), then restores it: after the backoff, writes go
// through and read back.
func TestLazyConnectsWhenTheServerComesUp(t *testing.T) {
	o := testOptions(t)
	p := newProxy(t, o.Addr)
	p.cut()
	o.Addr = p.addr
	l, err := OpenLazy(o)
	require.NoError(t, err)
	defer l.Close()
	ctx := context.Background()
	require.ErrorIs(t, l.Connect(ctx), telemetry.ErrUnavailable)

	p.restore(false)
	spans := buildTrace(traceSpec{RunID: "r1", SessionID: "s1", UserID: "u1", AgentID: "a1", Start: time.Now().Add(-time.Minute), Input: "late"})
	require.Eventually(t, func() bool { return l.Write(ctx, spans) == nil }, 10*time.Second, 100*time.Millisecond)
	got, err := l.GetTrace(ctx, spans[0].TraceID)
	require.NoError(t, err)
	require.Len(t, got, len(spans))

	// Connected, then cut: the server is as unavailable as before (the
	// trace API answers 503, not 500).
	p.cut()
	_, err = l.GetTrace(ctx, spans[0].TraceID)
	require.ErrorIs(t, err, telemetry.ErrUnavailable)
	require.ErrorIs(t, l.Write(ctx, spans), telemetry.ErrUnavailable)
	_, _, err = l.ListTraces(ctx, telemetry.TraceQuery{})
	require.ErrorIs(t, err, telemetry.ErrUnavailable)
	p.restore(false)
	require.Eventually(t, func() bool { return l.Write(ctx, spans) == nil }, 10*time.Second, 100*time.Millisecond)
}
