package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// bounded runs f and returns when f does or when ctx is done, whichever comes
// first.
//
// clickhouse-go honours ctx while it dials and once a query is under way, but
// not during the handshake of a new connection, which only its DialTimeout
// bounds: against a server that accepts connections and never answers (hung,
// overloaded, a half-dead proxy) a call would outlive its ctx by up to
// DialTimeout. When ctx ends first, f carries on in the background (for at
// most DialTimeout) and abandon, if given, disposes of what it returns.
func bounded[T any](ctx context.Context, f func() (T, error), abandon func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, withCtxErr(ctx, r.err)
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil && abandon != nil {
				abandon(r.v)
			}
		}()
		var zero T
		return zero, context.Cause(ctx)
	}
}

// withCtxErr makes an error that ctx caused match ctx's error: the driver
// turns a ctx deadline into a connection deadline, and reports an i/o
// timeout rather than context.DeadlineExceeded when that fires first.
func withCtxErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	cerr := ctx.Err()
	if cerr == nil {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			cerr = context.DeadlineExceeded
		}
	}
	if cerr == nil || errors.Is(err, cerr) {
		return err
	}
	return fmt.Errorf("%w: %w", cerr, err)
}

func (s *Store) exec(ctx context.Context, query string, args ...any) error {
	_, err := bounded(ctx, func() (struct{}, error) {
		return struct{}{}, s.conn.Exec(ctx, query, args...)
	}, nil)
	return err
}

// queryRow runs a query returning one row and scans it into dest. After an
// error, dest may still be written (by an abandoned call): do not read it.
func (s *Store) queryRow(ctx context.Context, dest []any, query string, args ...any) error {
	_, err := retryDropped(ctx, func() (struct{}, error) {
		return bounded(ctx, func() (struct{}, error) {
			return struct{}{}, s.conn.QueryRow(ctx, query, args...).Scan(dest...)
		}, nil)
	})
	return err
}

func (s *Store) query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	return retryDropped(ctx, func() (driver.Rows, error) {
		return bounded(ctx, func() (driver.Rows, error) {
			return s.conn.Query(ctx, query, args...)
		}, func(r driver.Rows) { _ = r.Close() })
	})
}

// prepareBatch starts an INSERT. Retrying it is safe: a batch sends no data
// until Send, so a statement that failed here inserted nothing.
func (s *Store) prepareBatch(ctx context.Context, query string) (driver.Batch, error) {
	return retryDropped(ctx, func() (driver.Batch, error) {
		return bounded(ctx, func() (driver.Batch, error) {
			return s.conn.PrepareBatch(ctx, query)
		}, func(b driver.Batch) { _ = b.Abort() })
	})
}

// retryDropped calls f again when it failed because the server dropped the
// connection it ran on. The driver checks a pooled connection before
// reusing it, but a server that restarts, or a proxy or load balancer that
// closes idle connections, can do so after that check and before the query
// reaches it — and then usually dropped every pooled connection, not one.
// The driver discards a connection that failed, so each retry takes the
// next pooled one or dials afresh: at most maxIdleConns+1 calls reach a
// fresh connection. Only for calls that changed nothing when they failed:
// reads, and preparing an insert.
func retryDropped[T any](ctx context.Context, f func() (T, error)) (T, error) {
	v, err := f()
	for range maxIdleConns {
		if err == nil || ctx.Err() != nil || !droppedConn(err) {
			break
		}
		v, err = f()
	}
	return v, err
}

// droppedConn reports whether err says the peer closed or reset the
// connection, as opposed to refusing it, timing out or answering with an
// error.
func droppedConn(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
