package telemetry

import (
	"context"
	"slices"
)

// PendingReader reads traces from a sink and adds the spans its recorder
// has not written yet. The recorder writes in batches (every second by
// default), and a run's trace link reaches the client with its final event:
// without the pending spans that link answered 404 until the next write.
// Traces list only what was written; one trace is complete at once. The
// spans pending are this process's own: another replica's reads wait for the
// write.
type PendingReader struct {
	Reader
	Recorder *Recorder
}

var _ Reader = PendingReader{}

// GetTrace returns the trace's written spans and its pending ones, ordered
// by start time; a span both written and pending (a write that just ended)
// appears once.
func (p PendingReader) GetTrace(ctx context.Context, traceID string) ([]Span, error) {
	pending := p.Recorder.Pending(traceID)
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
