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
