package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/auth"
)

// TestServeUserRateLimit: --user-rate-limit, --user-burst and
// --user-concurrent-runs (or their env) set every user's limit; none is
// set by default, and bad values are refused with what to fix.
func TestServeUserRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    auth.RateLimit
		wantErr string
	}{
		{name: "default", want: auth.RateLimit{}},
		{name: "flags", args: []string{"--user-rate-limit", "2.5", "--user-burst", "5", "--user-concurrent-runs", "2"},
			want: auth.RateLimit{RequestsPerSecond: 2.5, Burst: 5, ConcurrentRuns: 2}},
		{name: "env", env: map[string]string{"TROUPE_USER_RATE_LIMIT": "1", "TROUPE_USER_CONCURRENT_RUNS": "3"},
			want: auth.RateLimit{RequestsPerSecond: 1, ConcurrentRuns: 3}},
		{name: "flag wins", args: []string{"--user-rate-limit", "4"}, env: map[string]string{"TROUPE_USER_RATE_LIMIT": "1"},
			want: auth.RateLimit{RequestsPerSecond: 4}},
		{name: "burst alone", args: []string{"--user-burst", "3"}, wantErr: "user rate limit: burst 3 needs requests_per_second (set with --user-rate-limit, --user-burst and --user-concurrent-runs)"},
		{name: "negative rate", args: []string{"--user-rate-limit", "-1"}, wantErr: "requests_per_second must be a positive number"},
		{name: "bad env rate", env: map[string]string{"TROUPE_USER_RATE_LIMIT": "fast"}, wantErr: `TROUPE_USER_RATE_LIMIT "fast": use requests per second, such as 5 or 0.5`},
		{name: "bad env runs", env: map[string]string{"TROUPE_USER_CONCURRENT_RUNS": "-2"}, wantErr: `TROUPE_USER_CONCURRENT_RUNS "-2": use a whole number, 0 for no limit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			var out bytes.Buffer
			cfg, err := parseServe(tt.args, getenv, &out)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.userLimit)
		})
	}
}
