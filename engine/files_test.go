package engine_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine"
)

// TestFIFOInFolderDoesNotBlockReloads checks that a FIFO named like a spec
// neither blocks the reload (new agents were 404 and reloads 503 for good)
// nor stops the other files from loading.
func TestFIFOInFolderDoesNotBlockReloads(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("a.yaml", agentYAML("a", "v1"))
	e := f.engine()
	pipe := filepath.Join(f.dir, "x.yaml")
	require.NoError(t, syscall.Mkfifo(pipe, 0o644))
	t.Cleanup(func() { // releases a reader blocked in open (the bug under test)
		if w, err := os.OpenFile(pipe, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = w.Close()
		}
	})
	f.write("b.yaml", agentYAML("b", "v1"))
	done := make(chan *engine.ReloadResult, 1)
	go func() { done <- e.Load() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the reload did not return: a read blocked")
	}
	_, ok := e.Current().Agent("b")
	require.True(t, ok, "the other files load")
	require.Contains(t, e.Current().Diagnostics().Error(), "x.yaml:1:1: spec file is a named pipe, not a regular file")
}
