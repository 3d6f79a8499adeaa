package sse_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/sse"
)

type counter struct{ open atomic.Int64 }

func (c *counter) StreamOpened() { c.open.Add(1) }
func (c *counter) StreamClosed() { c.open.Add(-1) }

func TestWriterFrames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		write func(w *sse.Writer) error
		want  string
	}{
		{"named event", func(w *sse.Writer) error { return w.Event("RunContent", map[string]string{"a": "b"}) }, "event: RunContent\ndata: {\"a\":\"b\"}\n\n"},
		{"event with id", func(w *sse.Writer) error { return w.EventID("7", "RunContent", 1) }, "id: 7\nevent: RunContent\ndata: 1\n\n"},
		{"data only", func(w *sse.Writer) error { return w.Event("", 1) }, "data: 1\n\n"},
		{"raw data", func(w *sse.Writer) error { return w.Data(" [DONE]\n") }, "data: [DONE]\n\n"},
		{"heartbeat", func(w *sse.Writer) error { return w.Heartbeat() }, ": ping\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			w := sse.NewWriter(rec)
			require.NoError(t, tt.write(w))
			require.Equal(t, http.StatusOK, rec.Code)
			require.Equal(t, "text/event-stream", rec.Header().Get("Content-Type"))
			require.Equal(t, "no", rec.Header().Get("X-Accel-Buffering"))
			require.True(t, rec.Flushed)
			require.Equal(t, tt.want, rec.Body.String())
		})
	}
}

// failing is a client that went away: every write fails.
type failing struct{ http.ResponseWriter }

var errGone = errors.New("client gone")

func (failing) Write([]byte) (int, error) { return 0, errGone }

func TestWriterKeepsTheFirstError(t *testing.T) {
	t.Parallel()
	w := sse.NewWriter(failing{httptest.NewRecorder()})
	require.ErrorIs(t, w.Event("a", 1), errGone)
	require.ErrorIs(t, w.Heartbeat(), errGone)
	require.ErrorIs(t, w.Data("x"), errGone)
}

func TestStreamsCountOpenStreams(t *testing.T) {
	t.Parallel()
	var c counter
	s := sse.NewStreams(&c)
	_, closeA := s.Open(httptest.NewRecorder())
	_, closeB := s.Open(httptest.NewRecorder())
	require.Equal(t, int64(2), c.open.Load())
	closeA()
	closeB()
	require.Equal(t, int64(0), c.open.Load())

	var none *sse.Streams // no metrics: nothing counted, nothing fails
	w, closed := none.Open(httptest.NewRecorder())
	require.NoError(t, w.Heartbeat())
	closed()
}

func TestLastEventID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header string
		want   int
		ok     bool
		err    bool
	}{
		{"absent", "", 0, false, false},
		{"index", "12", 12, true, false},
		{"spaces", " 3 ", 3, true, false},
		{"first", "0", 0, true, false},
		{"not a number", "abc", 0, false, true},
		{"negative", "-2", 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				r.Header.Set("Last-Event-ID", tt.header)
			}
			got, ok, err := sse.LastEventID(r)
			require.Equal(t, tt.err, err != nil, err)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestHeartbeatsUntilCancelled(t *testing.T) {
	t.Parallel()
	cw := &counting{ResponseWriter: httptest.NewRecorder()}
	w := sse.NewWriter(cw)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Heartbeats(ctx, time.Millisecond)
	}()
	require.Eventually(t, func() bool {
		return cw.writes.Load() >= 2
	}, 5*time.Second, time.Millisecond)
	cancel()
	<-done
}

// counting is a client that counts the writes reaching it.
type counting struct {
	http.ResponseWriter
	writes atomic.Int64
}

func (c *counting) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return len(p), nil
}
