package ratelimit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/auth"
)

// TestDecideBurstThenSteadyRate drives GCRA with a fake clock: a burst
// passes at once, the next request waits one emission, and then requests
// pass at the steady rate only.
func TestDecideBurstThenSteadyRate(t *testing.T) {
	t.Parallel()
	c, ok := cellOf(auth.RateLimit{RequestsPerSecond: 2, Burst: 3})
	require.True(t, ok)
	require.Equal(t, cell{emission: 500 * time.Millisecond, tolerance: time.Second}, c)

	start := time.Unix(1_700_000_000, 0)
	var tat time.Time
	type step struct {
		at       time.Duration // since start
		wait     time.Duration // 0: allowed
		retrySec int
	}
	steps := []step{
		{at: 0}, {at: 0}, {at: 0}, // the burst
		{at: 0, wait: 500 * time.Millisecond, retrySec: 1},
		{at: 100 * time.Millisecond, wait: 400 * time.Millisecond, retrySec: 1},
		{at: 500 * time.Millisecond},                                            // one emission later: one more
		{at: 500 * time.Millisecond, wait: 500 * time.Millisecond, retrySec: 1}, // and no more
		{at: time.Second},
		{at: 1500 * time.Millisecond},
		{at: 1500 * time.Millisecond, wait: 500 * time.Millisecond, retrySec: 1},
		{at: 10 * time.Second}, // a quiet spell refills the burst...
		{at: 10 * time.Second},
		{at: 10 * time.Second},
		{at: 10 * time.Second, wait: 500 * time.Millisecond, retrySec: 1}, // ...but not beyond it
	}
	for i, s := range steps {
		next, wait := Decide(tat, start.Add(s.at), c.emission, c.tolerance)
		require.Equal(t, s.wait, wait, "step %d", i)
		if wait == 0 {
			require.True(t, next.After(tat), "step %d", i)
		} else {
			require.Equal(t, tat, next, "step %d", i)
			require.Equal(t, s.retrySec, RetryAfter(wait), "step %d", i)
		}
		tat = next
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		wait time.Duration
		want int
	}{
		{time.Microsecond, 1},
		{999 * time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + time.Microsecond, 2},
		{59500 * time.Millisecond, 60},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, RetryAfter(tt.wait), tt.wait.String())
	}
}

func TestSlowRateRetryAfter(t *testing.T) {
	t.Parallel()
	// One request a minute, no burst: the second waits the whole minute.
	c, ok := cellOf(auth.RateLimit{RequestsPerSecond: 1.0 / 60})
	require.True(t, ok)
	now := time.Unix(1_700_000_000, 0)
	tat, wait := Decide(time.Time{}, now, c.emission, c.tolerance)
	require.Zero(t, wait)
	_, wait = Decide(tat, now.Add(15*time.Second), c.emission, c.tolerance)
	require.Equal(t, 45, RetryAfter(wait))
}

func TestCellDefaults(t *testing.T) {
	t.Parallel()
	_, ok := cellOf(auth.RateLimit{ConcurrentRuns: 2})
	require.False(t, ok)
	c, ok := cellOf(auth.RateLimit{RequestsPerSecond: 2.5})
	require.True(t, ok)
	require.Equal(t, cell{emission: 400 * time.Millisecond, tolerance: 800 * time.Millisecond}, c, "burst defaults to the rate rounded up")
}
