package telemetry

import (
	"context"
	"log/slog"
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
	// BatchSize is the most spans written at once (default 1024).
	BatchSize int
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
type Recorder struct {
	opts RecorderOptions
	log  *slog.Logger
	q    chan Span

	dropped atomic.Uint64
	written atomic.Uint64
	failed  atomic.Uint64 // failed writes
}

// NewRecorder returns a recorder; call Run to start writing.
func NewRecorder(opts RecorderOptions) *Recorder {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 16384
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1024
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
	return &Recorder{opts: opts, log: opts.Logger, q: make(chan Span, opts.QueueSize)}
}

// Record queues spans without blocking; spans that do not fit are dropped and
// counted.
func (r *Recorder) Record(spans ...Span) {
	for _, s := range spans {
		select {
		case r.q <- s:
		default:
			r.dropped.Add(1)
		}
	}
}

// Stats returns the queue depth and the spans dropped and written so far.
func (r *Recorder) Stats() (queued int, dropped, written uint64) {
	return len(r.q), r.dropped.Load(), r.written.Load()
}

// Run writes queued spans until ctx ends, then flushes what is queued (within
// WriteTimeout) and returns.
func (r *Recorder) Run(ctx context.Context) error {
	batch := make([]Span, 0, r.opts.BatchSize)
	tick := time.NewTicker(r.opts.FlushInterval)
	defer tick.Stop()
	var backoff time.Duration
	var resume time.Time
	flush := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		if !resume.IsZero() && time.Now().Before(resume) && ctx.Err() == nil {
			if len(batch) < cap(batch) {
				return // keep collecting while the sink is backing off
			}
			r.dropped.Add(uint64(len(batch)))
			batch = batch[:0]
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.WriteTimeout)
		err := r.opts.Sink.Write(wctx, batch)
		cancel()
		if err != nil {
			r.failed.Add(1)
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
		batch = batch[:0]
	}
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case s := <-r.q:
					batch = append(batch, s)
					if len(batch) == cap(batch) {
						flush(ctx)
					}
					continue
				default:
				}
				break
			}
			resume = time.Time{}
			flush(ctx)
			return nil
		case s := <-r.q:
			batch = append(batch, s)
			if len(batch) == cap(batch) {
				flush(ctx)
			}
		case <-tick.C:
			flush(ctx)
		}
	}
}
