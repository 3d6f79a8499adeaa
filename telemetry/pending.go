package telemetry

import (
	"context"
	"slices"
	"time"
)

// PendingReader reads traces from a sink, first having the recorder write
// the trace's spans that are still queued. The recorder writes in batches
// (every second by default), and a run's trace link reaches the client with
// its final event: without this the link answered 404 until the next write.
// The spans that were queued are added to what the sink has, so the trace
// reads whole even when the write fails or is late (the sink is down or
// slow). The spans pending are this process's own: another replica's reads
// wait for the write.
type PendingReader struct {
	Reader
	Recorder *Recorder
}

var _ Reader = PendingReader{}

// pendingFlushWait bounds how long a trace read waits for the recorder's
// write before answering with the queued spans instead.
const pendingFlushWait = 2 * time.Second

// GetTrace returns the trace's spans ordered by start time, writing its
// queued ones first; a span both written and queued appears once.
func (p PendingReader) GetTrace(ctx context.Context, traceID string) ([]Span, error) {
	pending := p.Recorder.Pending(traceID)
	if len(pending) > 0 {
		// A failed or late write leaves the sink without them: they are
		// merged in below either way (a failed write drops its batch).
		fctx, cancel := context.WithTimeout(ctx, pendingFlushWait)
		_ = p.Recorder.Flush(fctx)
		cancel()
	}
	spans, err := p.Reader.GetTrace(ctx, traceID)
	if err != nil || len(pending) == 0 {
		return spans, err
	}
	seen := make(map[string]bool, len(spans))
	for _, sp := range spans {
		seen[sp.SpanID] = true
	}
	for _, sp := range pending {
		if !seen[sp.SpanID] {
			spans = append(spans, sp)
		}
	}
	slices.SortStableFunc(spans, func(a, b Span) int { return a.Start.Compare(b.Start) })
	return spans, nil
}
