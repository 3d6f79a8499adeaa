package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	Sink Sink
	// QueueSize bounds the spans waiting to be written (default 16384). When
	// it is full, new spans are dropped and counted: runs never wait for a
	// sink.
	QueueSize int
	// BatchSize is how many queued spans make a write happen before the
	// next FlushInterval (default 1024).
	BatchSize int
	// MaxBatchSize is the most spans one write takes (default 16 ×
	// BatchSize). Writes take more than BatchSize only when the queue has
	// fallen behind: a sink whose writes cost mostly a fixed delay (a
	// ClickHouse insert, ~5–50 ms however small) then catches up in fewer,
	// larger writes instead of dropping spans.
	MaxBatchSize int
	// FlushInterval is the longest a span waits before a write (default 1s).
	FlushInterval time.Duration
	// WriteTimeout bounds one write (default 5s).
	WriteTimeout time.Duration
	// MaxBackoff bounds the pause after failed writes (default 30s).
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// Recorder queues spans and writes them to a sink in batches from one
// goroutine (Run). Record never blocks. When the sink fails (a ClickHouse
// outage), the batch is dropped and counted, and writes pause with
// exponential backoff while new spans queue up to the bound; the first
// successful write ends the backoff.
//
// The queue is a slice behind a mutex rather than a channel: a channel
// receive wakes the writer goroutine for every span, and those wake-ups
// (a futex call each when the writer sleeps) cost more than building the
// spans. Record only signals the writer when a batch is full; otherwise the
// writer comes by every FlushInterval.
type Recorder struct {
	opts RecorderOptions
	log  *slog.Logger

	mu    sync.Mutex
	queue []Span // at most QueueSize spans
	// writing is the batch being written, read by Pending: a span leaves
	// the queue before its write ends.
	writing []Span
	full    chan struct{} // holds a token when the queue has a batch to write
	// flushes asks Run to write everything queued now; Run closes the
	// channel sent once it has tried.
	flushes chan chan struct{}

	dropped atomic.Uint64
	written atomic.Uint64
}

// NewRecorder returns a recorder; call Run to start writing.
func NewRecorder(opts RecorderOptions) *Recorder {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 16384
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1024
	}
	if opts.MaxBatchSize < opts.BatchSize {
		opts.MaxBatchSize = 16 * opts.BatchSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{opts: opts, log: opts.Logger, full: make(chan struct{}, 1), flushes: make(chan chan struct{})}
}

// Record queues spans without blocking; spans that do not fit are dropped and
// counted.
func (r *Recorder) Record(spans ...Span) {
	r.mu.Lock()
	n := min(len(spans), r.opts.QueueSize-len(r.queue))
	r.queue = append(r.queue, spans[:n]...)
	signal := len(r.queue) >= r.opts.BatchSize && len(r.queue)-n < r.opts.BatchSize
	r.mu.Unlock()
	if n < len(spans) {
		r.dropped.Add(uint64(len(spans) - n))
	}
	if signal {
		select {
		case r.full <- struct{}{}:
		default: // already signalled
		}
	}
}

// Pending returns the spans of trace traceID that are queued or
// being written (sharing their attribute maps, which are never changed once
// recorded), so a trace can be read before its batch reaches the sink.
// It scans the queue under the lock (a few microseconds for a full batch);
// only trace reads call it, never runs.
func (r *Recorder) Pending(traceID string) []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Span
	for _, q := range [2][]Span{r.writing, r.queue} {
		for _, sp := range q {
			if sp.TraceID == traceID {
				out = append(out, sp)
			}
		}
	}
	return out
}

// Flush asks Run to write what is queued now, not at the next
// FlushInterval, and waits until it has tried (a sink backing off keeps the
// spans queued) or ctx ends. Reading a trace calls it, so a trace read as
// soon as its run ends is written, and listed, from then on.
func (r *Recorder) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case r.flushes <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the queue depth and the spans dropped and written so far.
func (r *Recorder) Stats() (queued int, dropped, written uint64) {
	r.mu.Lock()
	queued = len(r.queue)
	r.mu.Unlock()
	return queued, r.dropped.Load(), r.written.Load()
}

// take moves up to MaxBatchSize spans from the queue into the empty batch,
// or none when fewer than least are queued.
func (r *Recorder) take(batch []Span, least int) []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) < least {
		return batch
	}
	n := min(len(r.queue), r.opts.MaxBatchSize)
	batch = append(batch, r.queue[:n]...)
	rest := copy(r.queue, r.queue[n:])
	clear(r.queue[rest:]) // let the written spans' strings go
	r.queue = r.queue[:rest]
	return batch
}

// Run writes queued spans until ctx ends, then flushes what is queued (within
// WriteTimeout) and returns.
func (r *Recorder) Run(ctx context.Context) error {
	batch := make([]Span, 0, r.opts.BatchSize) // grows up to MaxBatchSize
	tick := time.NewTicker(r.opts.FlushInterval)
	defer tick.Stop()
	var backoff time.Duration
	var resume time.Time
	// write writes batch, or drops it when the sink fails.
	write := func(ctx context.Context) {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.WriteTimeout)
		r.mu.Lock()
		r.writing = batch
		r.mu.Unlock()
		err := r.opts.Sink.Write(wctx, batch)
		cancel()
		r.mu.Lock()
		r.writing = nil
		r.mu.Unlock()
		if err != nil {
			r.dropped.Add(uint64(len(batch)))
			backoff = min(max(2*backoff, 500*time.Millisecond), r.opts.MaxBackoff)
			resume = time.Now().Add(backoff)
			r.log.Warn("writing spans failed; dropping the batch and backing off", "spans", len(batch), "backoff", backoff, "err", err)
		} else {
			r.written.Add(uint64(len(batch)))
			if backoff > 0 {
				r.log.Info("writing spans works again")
			}
			backoff, resume = 0, time.Time{}
		}
		clear(batch)
		batch = batch[:0]
	}
	// flush writes what is queued, one batch at a time, or only the full
	// batches; while the sink is backing off, spans stay queued (up to
	// QueueSize, then dropped).
	flush := func(ctx context.Context, fullOnly bool) {
		for {
			if !resume.IsZero() && time.Now().Before(resume) && ctx.Err() == nil {
				return
			}
			least := 1
			if fullOnly {
				least = r.opts.BatchSize
			}
			batch = r.take(batch, least)
			if len(batch) == 0 {
				return
			}
			write(ctx)
		}
	}
	for {
		select {
		case <-ctx.Done():
			resume = time.Time{}
			flush(ctx, false)
			return nil
		case <-r.full:
			flush(ctx, true)
		case done := <-r.flushes:
			flush(ctx, false)
			close(done)
		case <-tick.C:
			flush(ctx, false)
		}
	}
}
