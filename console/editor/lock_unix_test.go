//go:build unix

package editor_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/editor"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/store"
)

// newWriter is an editor that writes: newEditor's, with an audit log.
func newWriter(t *testing.T, dir string) *editor.Service {
	t.Helper()
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "troupe.db"), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	eng, err := engine.New(engine.Options{Dirs: []string{dir}, Env: noEnv, Runtime: &engine.Runtime{Env: noEnv}})
	require.NoError(t, err)
	t.Cleanup(eng.Close)
	// The reload loop, which every write asks for a reload.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return editor.New(editor.Options{Engine: eng, Audit: db})
}

// TestWritesWaitForAnotherProcess: a replica sharing the spec folder holds
// its lock (taken here as another process would, with flock on the folder)
// while it writes; a save waits for it instead of passing its hash check
// at the same time, and goes through once the lock is released.
func TestWritesWaitForAnotherProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("kind: Agent\nname: a\nmodel: echo\n"), 0o644))
	ed := newWriter(t, dir)
	got, err := ed.Read("a.yaml")
	require.NoError(t, err)

	other, err := os.Open(dir)
	require.NoError(t, err)
	defer other.Close()
	require.NoError(t, syscall.Flock(int(other.Fd()), syscall.LOCK_EX))

	done := make(chan error, 1)
	go func() {
		_, err := ed.Save(t.Context(), editor.Actor{Name: "test"}, "a.yaml", []byte("kind: Agent\nname: a\nmodel: echo\ndescription: mine\n"), got.Hash)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the save did not wait for the other process's lock (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	data, err := os.ReadFile(filepath.Join(dir, "a.yaml"))
	require.NoError(t, err)
	require.NotContains(t, string(data), "mine", "written while another process held the folder")

	require.NoError(t, syscall.Flock(int(other.Fd()), syscall.LOCK_UN))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the save did not go through once the lock was released")
	}
	data, err = os.ReadFile(filepath.Join(dir, "a.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(data), "description: mine")
}

// TestCreateThatCannotBeWrittenFails: a new file the file system refuses —
// its folder cannot be made (a file stands there), or its name is longer
// than a name may be — is an error, never a success that wrote nothing.
func TestCreateThatCannotBeWrittenFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "teams"), []byte("not a folder"), 0o644))
	ed := newWriter(t, dir)
	for _, p := range []string{"teams/crew.yaml", strings.Repeat("a", 300) + ".yaml"} {
		_, err := ed.Save(t.Context(), editor.Actor{Name: "test"}, p, []byte("kind: Agent\nname: crew\nmodel: echo\n"), "")
		require.Error(t, err, p)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, entries, 1, "only the file that was there")
	}
}
