// Package ratelimit enforces the rate limits of API keys and users on the
// API's routes: requests per second with a burst, by the generic cell rate
// algorithm (GCRA) kept in the database so that every replica sharing it
// enforces one limit, and concurrent runs, counted from the database at run
// start. Refusals are 429 with Retry-After.
package ratelimit

import (
	"math"
	"time"

	"github.com/troupehq/troupe/console/auth"
)

// cell is a limit in GCRA's terms: emission is the time one request uses
// up (1/rate) and tolerance how far ahead of now the theoretical arrival
// time may run, (burst-1) emissions.
type cell struct {
	emission, tolerance time.Duration
}

// cellOf converts a rate limit; ok is false when it limits no requests.
func cellOf(l auth.RateLimit) (c cell, ok bool) {
	if l.RequestsPerSecond <= 0 {
		return cell{}, false
	}
	burst := l.Burst
	if burst <= 0 {
		burst = max(1, int(math.Ceil(l.RequestsPerSecond)))
	}
	em := time.Duration(float64(time.Second) / l.RequestsPerSecond)
	return cell{emission: em, tolerance: em * time.Duration(burst-1)}, true
}

// Decide is GCRA: given a subject's theoretical arrival time tat (zero for a
// new subject), it returns the next one and 0 when a request arriving at
// now is allowed, or tat unchanged and how long until it would be. The
// store does the same in SQL; this is its reference and the in-memory
// store's.
func Decide(tat, now time.Time, emission, tolerance time.Duration) (next time.Time, wait time.Duration) {
	base := tat
	if base.Before(now) {
		base = now
	}
	if ahead := base.Sub(now); ahead > tolerance {
		return tat, ahead - tolerance
	}
	return base.Add(emission), 0
}

// RetryAfter is the whole seconds, rounded up, a client told to wait wait
// should wait (at least 1).
func RetryAfter(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}
