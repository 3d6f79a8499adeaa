package auth_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/spec"
)

// TestLoadKeysFileRefusesNonRegularFiles checks that a keys file that is a
// FIFO or a device fails startup with a clear error instead of blocking it
// or reading until memory runs out.
func TestLoadKeysFileRefusesNonRegularFiles(t *testing.T) {
	t.Parallel()
	pipe := filepath.Join(t.TempDir(), "keys.yaml")
	require.NoError(t, syscall.Mkfifo(pipe, 0o600))
	t.Cleanup(func() { // releases a reader blocked in open (the bug under test)
		if f, err := os.OpenFile(pipe, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = f.Close()
		}
	})
	for _, path := range []string{pipe, "/dev/zero"} {
		keys, err := auth.ParseKeys("")
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- auth.LoadKeysFile(path, keys) }()
		select {
		case err := <-done:
			require.ErrorIs(t, err, spec.ErrNotRegular)
		case <-time.After(5 * time.Second):
			t.Fatalf("loading the keys file %s did not return", path)
		}
	}
}

const (
	aliceKey = "sk-alice-0123456789abcdef"
	adminKey = "sk-admin-0123456789abcdef"
)

func TestParseKeys(t *testing.T) {
	t.Parallel()
	_, err := auth.ParseKeys("short=admin")
	require.ErrorContains(t, err, "too short")
	_, err = auth.ParseKeys(adminKey + "=root")
	require.ErrorContains(t, err, `unknown scope "root"`)
	require.NotContains(t, err.Error(), adminKey, "errors never show keys")
	_, err = auth.ParseKeys(adminKey)
	require.ErrorContains(t, err, "KEY=SCOPE+SCOPE@USER")
	r, err := auth.ParseKeys(" " + aliceKey + "=agents:run@alice , ")
	require.NoError(t, err)
	k, ok := r.Lookup(aliceKey)
	require.True(t, ok)
	require.Equal(t, "alice", k.UserID)
	require.True(t, k.Has(auth.ScopeAgentsRun))
	require.False(t, k.Has(auth.ScopeSessionsRead))
}

// TestLoadKeysFileRateLimit reads a key's rate_limit and refuses bad ones
// with what to fix.
func TestLoadKeysFileRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, limit string
		want        auth.RateLimit
		err         string
	}{
		{name: "none", limit: "", want: auth.RateLimit{}},
		{name: "full", limit: "{requests_per_second: 5, burst: 10, concurrent_runs: 3}", want: auth.RateLimit{RequestsPerSecond: 5, Burst: 10, ConcurrentRuns: 3}},
		{name: "runs only", limit: "{concurrent_runs: 1}", want: auth.RateLimit{ConcurrentRuns: 1}},
		{name: "fraction", limit: "{requests_per_second: 0.5}", want: auth.RateLimit{RequestsPerSecond: 0.5}},
		{name: "negative rate", limit: "{requests_per_second: -1}", err: `API key "alice-app": rate_limit: requests_per_second must be a positive number (or 0 for no limit), got -1`},
		{name: "tiny rate", limit: "{requests_per_second: 0.0001}", err: "below the smallest limit, 0.001"},
		{name: "burst without rate", limit: "{burst: 4}", err: "burst 4 needs requests_per_second"},
		{name: "negative burst", limit: "{requests_per_second: 1, burst: -2}", err: "burst must be at least 1"},
		{name: "negative runs", limit: "{concurrent_runs: -1}", err: "concurrent_runs must be at least 1 (or 0 for no limit), got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := "keys:\n  - name: alice-app\n    key: " + aliceKey + "\n    scopes: [agents:run]\n"
			if tt.limit != "" {
				doc += "    rate_limit: " + tt.limit + "\n"
			}
			path := filepath.Join(t.TempDir(), "keys.yaml")
			require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
			keys, err := auth.ParseKeys("")
			require.NoError(t, err)
			err = auth.LoadKeysFile(path, keys)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			k, ok := keys.Lookup(aliceKey)
			require.True(t, ok)
			require.Equal(t, tt.want, k.Limit)
			require.Equal(t, tt.want != auth.RateLimit{}, keys.Limited())
		})
	}
}

// TestLoadKeysFileShape checks that a keys file of the wrong shape is refused
// with the file, the line and what the file should hold, not a Go type name.
func TestLoadKeysFileShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc string
		err       []string // substrings of the error, besides the path
		keys      int
	}{
		{name: "good", doc: "keys:\n  - name: a\n    key: " + aliceKey + "\n    scopes: [agents:run]\n", keys: 1},
		{name: "empty", doc: "", keys: 0},
		{name: "top-level list", doc: "- name: a\n  key: " + aliceKey + "\n", err: []string{"line 1:", "expected `keys:` followed by a list"}},
		{name: "keys is a mapping", doc: "keys:\n  a:\n    key: " + aliceKey + "\n", err: []string{"line 2:", "`keys` must be a list"}},
		{name: "entry is a string", doc: "keys:\n  - " + aliceKey + "=admin\n", err: []string{"line 2:", "key entry #1 must be a mapping"}},
		{name: "scopes is a string", doc: "keys:\n  - name: a\n    key: " + aliceKey + "\n    scopes: agents:run\n", err: []string{"line 4:", "key entry #1: scopes must be a list, for example [agents:run, sessions:read]"}},
		{name: "unknown field", doc: "keys:\n  - name: a\n    secret: " + aliceKey + "\n", err: []string{"line 3:", `unknown field "secret"`}},
		{name: "unknown top field", doc: "api_keys: []\n", err: []string{"line 1:", `unknown field "api_keys"`}},
		{name: "bad yaml", doc: "keys: [\n", err: []string{"not valid YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keys.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tt.doc), 0o600))
			keys, err := auth.ParseKeys("")
			require.NoError(t, err)
			err = auth.LoadKeysFile(path, keys)
			if tt.err == nil {
				require.NoError(t, err)
				require.Equal(t, tt.keys, keys.Len())
				return
			}
			require.ErrorContains(t, err, "API keys file "+path+": ")
			for _, s := range tt.err {
				require.ErrorContains(t, err, s)
			}
			require.NotContains(t, err.Error(), "auth.")
			require.NotContains(t, err.Error(), "!!")
		})
	}
}
