package telemetry_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/telemetry"
)

// memorySink keeps written spans, or fails every write.
type memorySink struct {
	mu    sync.Mutex
	spans []telemetry.Span
	fail  bool
}

func (m *memorySink) Write(_ context.Context, spans []telemetry.Span) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("sink down")
	}
	m.spans = append(m.spans, spans...)
	return nil
}

func (m *memorySink) ListTraces(context.Context, telemetry.TraceQuery) ([]telemetry.TraceSummary, int, error) {
	return nil, 0, nil
}

func (m *memorySink) GetTrace(_ context.Context, id string) ([]telemetry.Span, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []telemetry.Span
	for _, sp := range m.spans {
		if sp.TraceID == id {
			out = append(out, sp)
		}
	}
	return out, nil
}

// TestPendingReader checks that a trace still queued in the recorder reads
// whole, in start order, whether the write it triggers succeeds (the spans
// are then in the sink) or fails (they come from the queue).
func TestPendingReader(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		fail    bool
		written int
	}{{name: "sink up", written: 2}, {name: "sink down", fail: true, written: 0}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sink := &memorySink{fail: tt.fail}
			rec := telemetry.NewRecorder(telemetry.RecorderOptions{Sink: sink, FlushInterval: time.Hour})
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- rec.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			t0 := time.Now()
			rec.Record(
				telemetry.Span{TraceID: "t1", SpanID: "b", ParentID: "a", Start: t0.Add(time.Millisecond)},
				telemetry.Span{TraceID: "t1", SpanID: "a", Start: t0},
				telemetry.Span{TraceID: "t2", SpanID: "c", Start: t0},
			)
			r := telemetry.PendingReader{Reader: sink, Recorder: rec}
			spans, err := r.GetTrace(t.Context(), "t1")
			require.NoError(t, err)
			require.Len(t, spans, 2)
			require.Equal(t, []string{"a", "b"}, []string{spans[0].SpanID, spans[1].SpanID})
			written, err := sink.GetTrace(t.Context(), "t1")
			require.NoError(t, err)
			require.Len(t, written, tt.written)

			none, err := r.GetTrace(t.Context(), "t3")
			require.NoError(t, err)
			require.Empty(t, none)
		})
	}
}
