package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/troupehq/troupe/telemetry"
)

// Lazy is a Store that connects on first use and again after each failed
// attempt, no sooner than a backoff (1 s doubling to 30 s) allows. A server
// that is down when Troupe starts then costs dropped spans (counted by the
// recorder) and 503s from the trace API until it answers, instead of keeping
// Troupe from starting. Calls made while unconnected fail at once with an
// error wrapping telemetry.ErrUnavailable, and so do calls that cannot reach
// the server once connected; only one call at a time waits for a connection
// attempt. It is safe for concurrent use.
type Lazy struct {
	opts Options

	mu         sync.Mutex
	store      *Store
	connecting bool
	next       time.Time // no attempt before
	backoff    time.Duration
	lastErr    error
	closed     bool
}

var (
	_ telemetry.Sink   = (*Lazy)(nil)
	_ telemetry.Reader = (*Lazy)(nil)
)

const (
	lazyMinBackoff = time.Second
	lazyMaxBackoff = 30 * time.Second
)

// OpenLazy checks the options and returns a Lazy that has not connected yet.
func OpenLazy(opts Options) (*Lazy, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Lazy{opts: o, backoff: lazyMinBackoff}, nil
}

// Connect tries to connect now (unless connected), whatever the backoff says.
func (l *Lazy) Connect(ctx context.Context) error {
	l.mu.Lock()
	l.next = time.Time{}
	l.mu.Unlock()
	_, err := l.get(ctx)
	return err
}

// get returns the connected Store, connecting first when the backoff allows.
func (l *Lazy) get(ctx context.Context) (*Store, error) {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return nil, fmt.Errorf("clickhouse: closed: %w", telemetry.ErrUnavailable)
	case l.store != nil:
		s := l.store
		l.mu.Unlock()
		return s, nil
	case l.connecting || time.Now().Before(l.next):
		err := l.lastErr
		l.mu.Unlock()
		return nil, fmt.Errorf("clickhouse: not connected (retrying in the background; last error: %v): %w", err, telemetry.ErrUnavailable)
	}
	l.connecting = true
	l.mu.Unlock()

	s, err := Open(ctx, l.opts)

	l.mu.Lock()
	defer l.mu.Unlock()
	l.connecting = false
	if err != nil {
		l.lastErr = err
		l.next = time.Now().Add(l.backoff)
		l.backoff = min(2*l.backoff, lazyMaxBackoff)
		return nil, fmt.Errorf("%w (%w)", err, telemetry.ErrUnavailable)
	}
	if l.closed {
		_ = s.Close()
		return nil, fmt.Errorf("clickhouse: closed: %w", telemetry.ErrUnavailable)
	}
	if l.lastErr != nil {
		l.opts.Logger.Info("connected to ClickHouse for traces", "addr", l.opts.Addr, "version", s.ServerVersion())
	}
	l.store, l.lastErr, l.backoff = s, nil, lazyMinBackoff
	return s, nil
}

// Write implements telemetry.Sink.
func (l *Lazy) Write(ctx context.Context, spans []telemetry.Span) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return unreachable(ctx, s.Write(ctx, spans))
}

// ListTraces implements telemetry.Reader.
func (l *Lazy) ListTraces(ctx context.Context, q telemetry.TraceQuery) ([]telemetry.TraceSummary, int, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, 0, err
	}
	list, total, err := s.ListTraces(ctx, q)
	return list, total, unreachable(ctx, err)
}

// GetTrace implements telemetry.Reader.
func (l *Lazy) GetTrace(ctx context.Context, traceID string) ([]telemetry.Span, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	spans, err := s.GetTrace(ctx, traceID)
	return spans, unreachable(ctx, err)
}

// unreachable marks an error of a connected store as telemetry.ErrUnavailable
// (the trace API then answers 503, as while unconnected) when the server
// could not be reached: not when it answered with an error of its own (a
// *ch.Exception) or the caller's context ended.
func unreachable(ctx context.Context, err error) error {
	var ex *ch.Exception
	if err == nil || ctx.Err() != nil || errors.As(err, &ex) || errors.Is(err, telemetry.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w (%w)", err, telemetry.ErrUnavailable)
}

// Close closes the connection, if there is one; later calls fail.
func (l *Lazy) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.store == nil {
		return nil
	}
	return l.store.Close()
}
