package model

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Target is one model to call: a provider and the vendor model id, with the
// per-request policy from its Model spec.
type Target struct {
	Provider Provider
	Name     string // provider name, for errors and metrics ("openai")
	Model    string // vendor model id
	Timeout  time.Duration
	Retries  int
	// Temperature and MaxTokens are the Model spec's defaults; a request's own
	// values win.
	Temperature *float64
	MaxTokens   int
	// Price is what the model charges (a Model spec's pricing, else the
	// built-in table); nil when unknown, and the answer's cost is then 0 and
	// flagged as unknown.
	Price *Price
}

// Backoff is the retry schedule: exponential from Base, capped at Max, with full
// jitter so retries of many clients do not synchronize. A Retry-After from the
// vendor wins when it is longer, up to MaxRetryAfter.
type Backoff struct {
	Base          time.Duration
	Max           time.Duration
	MaxRetryAfter time.Duration
}

// DefaultBackoff is used when a Chain has none.
var DefaultBackoff = Backoff{Base: 500 * time.Millisecond, Max: 8 * time.Second, MaxRetryAfter: 60 * time.Second}

// Delay is the wait before retry attempt+1 after err: exponential from Base,
// capped at Max, with jitter in [d/2, d] so clients do not retry in
// lockstep; a longer Retry-After from the server wins, up to MaxRetryAfter.
func (b Backoff) Delay(attempt int, err error) time.Duration {
	d := b.Base << attempt
	if d > b.Max || d <= 0 {
		d = b.Max
	}
	d = time.Duration(rand.Int64N(int64(d)/2+1)) + d/2 // jitter in [d/2, d]
	var me *Error
	if errors.As(err, &me) && me.RetryAfter > d {
		d = min(me.RetryAfter, b.MaxRetryAfter)
	}
	return d
}

// Chain calls a primary model with retries, then each fallback in order. It is
// itself a Provider whose Request.Model is ignored: each Target names its model.
//
// A streamed call is retried or passed to a fallback only if no content has
// been delivered yet; once deltas reached the caller, a failure is final, since
// they cannot be taken back.
type Chain struct {
	Targets []Target // primary first
	Backoff Backoff
	// OnRetry, if set, is told about each retry (for logs and metrics).
	OnRetry func(target Target, attempt int, err error, wait time.Duration)
}

var _ Provider = (*Chain)(nil)

// Generate implements Provider.
func (c *Chain) Generate(ctx context.Context, req *Request, onDelta func(Delta)) (*Response, error) {
	if len(c.Targets) == 0 {
		return nil, errors.New("no model configured")
	}
	backoff := c.Backoff
	if backoff.Base == 0 {
		backoff = DefaultBackoff
	}
	var errs []error
	for _, t := range c.Targets {
		resp, delivered, err := c.try(ctx, t, req, onDelta, backoff)
		if err == nil {
			// Priced here, where the answering target (primary or
			// fallback) is known, so every loop gets cost for free.
			if t.Price != nil {
				resp.Cost, resp.CostKnown = t.Price.Cost(resp.Usage), true
			}
			return resp, nil
		}
		if ctx.Err() != nil || delivered {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("%s/%s: %w", t.Name, t.Model, err))
		if !fallbackWorthy(err) {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errors.Unwrap(errs[0])
	}
	return nil, fmt.Errorf("every model failed: %w", errors.Join(errs...))
}

// fallbackWorthy reports whether another model might succeed where this one
// failed: not for requests that are themselves wrong.
func fallbackWorthy(err error) bool {
	switch KindOf(err) {
	case ErrBadRequest, ErrContextLength:
		return false
	}
	return true
}

// try calls one target with retries. delivered reports whether any delta
// reached the caller.
func (c *Chain) try(ctx context.Context, t Target, req *Request, onDelta func(Delta), b Backoff) (resp *Response, delivered bool, err error) {
	r := *req
	r.Model = t.Model
	if r.Temperature == nil {
		r.Temperature = t.Temperature
	}
	if r.MaxTokens == 0 {
		r.MaxTokens = t.MaxTokens
	}
	var forward func(Delta)
	if onDelta != nil {
		forward = func(d Delta) {
			delivered = true
			onDelta(d)
		}
	}
	for attempt := 0; ; attempt++ {
		resp, err = c.once(ctx, t, &r, forward)
		if err == nil || delivered || !Retryable(err) || attempt >= t.Retries || ctx.Err() != nil {
			return resp, delivered, err
		}
		wait := b.Delay(attempt, err)
		if c.OnRetry != nil {
			c.OnRetry(t, attempt+1, err, wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, delivered, ctx.Err()
		case <-timer.C:
		}
	}
}

func (c *Chain) once(ctx context.Context, t Target, req *Request, onDelta func(Delta)) (*Response, error) {
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, t.Timeout, &Error{Kind: ErrTimeout, Provider: t.Name, Message: fmt.Sprintf("no answer within %s", t.Timeout)})
		defer cancel()
	}
	resp, err := t.Provider.Generate(ctx, req, onDelta)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil && KindOf(cause) == ErrTimeout {
			return nil, cause
		}
	}
	return resp, err
}
