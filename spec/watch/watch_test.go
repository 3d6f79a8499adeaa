package watch

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

const (
	// waitTimeout bounds every wait for something that should happen, so a
	// broken watcher fails the test instead of hanging it. It is not a
	// latency requirement.
	waitTimeout = 2 * time.Second

	// quietPeriod is how long a test watches for something that should not
	// happen: several debounce periods.
	quietPeriod = 300 * time.Millisecond
)

// testOptions watches dirs with periodic rescans disabled, so that every
// signal in a test comes from fsnotify events unless the test opts in.
func testOptions(t *testing.T, dirs ...string) Options {
	return Options{
		Dirs:   dirs,
		Rescan: -1,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// start creates a Watcher and runs it until the test ends; cleanup waits for
// Run to return so nothing outlives the test.
func start(t *testing.T, opts Options) *Watcher {
	t.Helper()
	w, err := New(opts)
	require.NoError(t, err)
	run(t, w)
	return w
}

// run runs w until the test ends.
func run(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(waitTimeout):
			t.Error("Run did not return after cancel")
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func expectSignal(t *testing.T, w *Watcher, why string) {
	t.Helper()
	select {
	case <-w.C():
	case <-time.After(waitTimeout):
		t.Fatalf("no signal within %v: %s", waitTimeout, why)
	}
}

func expectNoSignal(t *testing.T, w *Watcher, why string) {
	t.Helper()
	select {
	case <-w.C():
		t.Fatalf("unexpected signal: %s", why)
	case <-time.After(quietPeriod):
	}
}

// countSignals receives signals until none arrived for quietPeriod and
// returns how many there were.
func countSignals(t *testing.T, w *Watcher) int {
	t.Helper()
	deadline := time.After(5 * waitTimeout)
	n := 0
	for {
		select {
		case <-w.C():
			n++
		case <-time.After(quietPeriod):
			return n
		case <-deadline:
			t.Fatalf("signals did not stop (%d so far)", n)
		}
	}
}

func TestNewFileSignals(t *testing.T) {
	dir := t.TempDir()
	w := start(t, testOptions(t, dir))

	writeFile(t, filepath.Join(dir, "agent.yaml"), "name: a\n")
	expectSignal(t, w, "new .yaml file")

	writeFile(t, filepath.Join(dir, "other.yml"), "name: b\n")
	expectSignal(t, w, "new .yml file")
}

func TestBurstCoalesces(t *testing.T) {
	dir := t.TempDir()
	w := start(t, testOptions(t, dir))

	path := filepath.Join(dir, "agent.yaml")
	for i := range 50 {
		writeFile(t, path, fmt.Sprintf("n: %d\n", i))
	}

	n := countSignals(t, w)
	require.GreaterOrEqual(t, n, 1, "a burst must signal")
	require.LessOrEqual(t, n, 5, "50 writes must coalesce into a few signals")
}

func TestContinuousWritesDoNotStarve(t *testing.T) {
	dir := t.TempDir()
	w := start(t, testOptions(t, dir))

	// Write more often than the debounce period for many debounce periods:
	// the max-wait cap must still let signals through while it goes on.
	path := filepath.Join(dir, "agent.yaml")
	got := 0
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		writeFile(t, path, time.Now().String())
		select {
		case <-w.C():
			got++
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.Positive(t, got, "no signal during a continuous stream of writes")
}

func TestAtomicSaveSignals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	writeFile(t, path, "v: 1\n")
	w := start(t, testOptions(t, dir))

	// What vim (with backupcopy=no), IDEs and most tools do: write a hidden
	// temp file, then rename it over the spec.
	tmp := filepath.Join(dir, ".agent.yaml.tmp")
	writeFile(t, tmp, "v: 2\n")
	require.NoError(t, os.Rename(tmp, path))
	expectSignal(t, w, "temp file renamed over a spec")
}

func TestIgnoredFilesDoNotSignal(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "agent.yaml")
	writeFile(t, spec, "v: 1\n")
	w := start(t, testOptions(t, dir))

	for _, name := range []string{
		".x.swp", "x.yaml~", "4913", "notes.txt",
		".x.yaml", "#x.yaml#", "x.yaml.swx", "x.yaml.tmp", "x.yaml.bak", "x.json",
	} {
		path := filepath.Join(dir, name)
		writeFile(t, path, "junk\n")
		require.NoError(t, os.Remove(path))
	}
	// A hidden folder and whatever is in it, e.g. .git.
	writeFile(t, filepath.Join(dir, ".git", "config.yaml"), "junk\n")
	// Metadata-only changes.
	require.NoError(t, os.Chmod(spec, 0o600))
	expectNoSignal(t, w, "only ignored files and Chmod events")

	// The watcher is alive; the silence above was not a dead watcher.
	writeFile(t, spec, "v: 2\n")
	expectSignal(t, w, "spec written after ignored files")
}

func TestDeleteAndRenameSignal(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(path string) error
	}{
		{"delete", os.Remove},
		{"rename to ignored name", func(path string) error { return os.Rename(path, path+".bak") }},
		{"rename out of tree", func(path string) error {
			return os.Rename(path, filepath.Join(t.TempDir(), "agent.yaml"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "agent.yaml")
			writeFile(t, path, "v: 1\n")
			w := start(t, testOptions(t, dir))

			require.NoError(t, tc.op(path))
			expectSignal(t, w, tc.name)
		})
	}
}

func TestNewSubfolderIsWatched(t *testing.T) {
	root := t.TempDir()
	w := start(t, testOptions(t, root))

	sub := filepath.Join(root, "team")
	require.NoError(t, os.Mkdir(sub, 0o755))
	expectSignal(t, w, "new subfolder")

	writeFile(t, filepath.Join(sub, "agent.yaml"), "v: 1\n")
	expectSignal(t, w, "file in a subfolder created after start")
}

func TestNewNestedSubfoldersAreWatched(t *testing.T) {
	root := t.TempDir()
	w := start(t, testOptions(t, root))

	// mkdir -p and a write right away: the inner folders and the file exist
	// before any watch on them can, so the signal for the top folder must
	// cover them.
	deep := filepath.Join(root, "a", "b", "c")
	writeFile(t, filepath.Join(deep, "one.yaml"), "v: 1\n")
	require.Positive(t, countSignals(t, w), "folder tree created with a spec inside")

	writeFile(t, filepath.Join(deep, "two.yaml"), "v: 1\n")
	expectSignal(t, w, "file in a deep folder created after start")
}

func TestRemovedFolderSignals(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "empty")
	require.NoError(t, os.Mkdir(sub, 0o755))
	w := start(t, testOptions(t, root))

	require.NoError(t, os.Remove(sub))
	expectSignal(t, w, "removed subfolder")
}

func TestRenamedFolderSignalsAndStaysWatched(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "old")
	writeFile(t, filepath.Join(sub, "agent.yaml"), "v: 1\n")
	w := start(t, testOptions(t, root))

	moved := filepath.Join(root, "new")
	require.NoError(t, os.Rename(sub, moved))
	require.Positive(t, countSignals(t, w), "renamed subfolder")

	writeFile(t, filepath.Join(moved, "agent.yaml"), "v: 2\n")
	expectSignal(t, w, "write in the renamed subfolder")

	// Moved out of the tree, the folder must no longer be reported on.
	outside := filepath.Join(t.TempDir(), "gone")
	require.NoError(t, os.Rename(moved, outside))
	require.Positive(t, countSignals(t, w), "subfolder moved out of the tree")

	writeFile(t, filepath.Join(outside, "agent.yaml"), "v: 3\n")
	expectNoSignal(t, w, "write in a folder moved out of the tree")
}

func TestSymlinkSwapSignals(t *testing.T) {
	// The layout of a Kubernetes ConfigMap volume: the visible spec is a
	// symlink through "..data", which is atomically re-pointed to a new
	// hidden folder on every update.
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "..v1", "agent.yaml"), "v: 1\n")
	if err := os.Symlink("..v1", filepath.Join(root, "..data")); err != nil {
		t.Skipf("symlinks not supported: %v", err)
	}
	require.NoError(t, os.Symlink(filepath.Join("..data", "agent.yaml"), filepath.Join(root, "agent.yaml")))
	w := start(t, testOptions(t, root))

	writeFile(t, filepath.Join(root, "..v2", "agent.yaml"), "v: 2\n")
	expectNoSignal(t, w, "staging a hidden folder")

	require.NoError(t, os.Symlink("..v2", filepath.Join(root, "..data_tmp")))
	require.NoError(t, os.Rename(filepath.Join(root, "..data_tmp"), filepath.Join(root, "..data")))
	expectSignal(t, w, "..data symlink swapped")
}

func TestSlowOwnerGetsOnePendingSignal(t *testing.T) {
	dir := t.TempDir()
	w := start(t, testOptions(t, dir))
	require.Equal(t, 1, cap(w.C()))

	// Several changes, each far enough apart to be signalled on its own,
	// while nobody receives.
	for i := range 3 {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("a%d.yaml", i)), "v: 1\n")
		time.Sleep(4 * defaultDebounce)
	}
	expectSignal(t, w, "pending signal")
	// At most one more, if the last change was signalled after we received.
	require.LessOrEqual(t, countSignals(t, w), 1)

	// The watcher was never blocked by the full channel.
	writeFile(t, filepath.Join(dir, "b.yaml"), "v: 1\n")
	expectSignal(t, w, "change after the owner caught up")
}

func TestErrorsSignal(t *testing.T) {
	dir := t.TempDir()
	w := start(t, testOptions(t, dir))

	// What inotify reports when its queue overflowed and events were lost.
	select {
	case w.fsw.Errors <- fsnotify.ErrEventOverflow:
	case <-time.After(waitTimeout):
		t.Fatal("Run does not receive fsnotify errors")
	}
	expectSignal(t, w, "fsnotify error")
}

func TestRescanCatchesMissedEvent(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t, dir)
	opts.Rescan = 50 * time.Millisecond
	w, err := New(opts)
	require.NoError(t, err)

	// Drop the kernel watch behind the Watcher's back, so the write below
	// produces no event at all, as when events are lost.
	require.NoError(t, w.fsw.Remove(dir))
	run(t, w)

	writeFile(t, filepath.Join(dir, "agent.yaml"), "v: 1\n")
	expectSignal(t, w, "change seen only by the periodic rescan")
}

func TestSyncWatchesMissingFolders(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))
	w, err := New(testOptions(t, root))
	require.NoError(t, err)
	// Run is not called: this test drives sync directly.
	t.Cleanup(func() { require.NoError(t, w.fsw.Close()) })
	require.True(t, w.watched[sub])

	// As if the folder's Create event had been lost: no watch on sub, and a
	// folder nobody has seen.
	w.unwatch(sub)
	require.NotContains(t, w.fsw.WatchList(), sub)
	unseen := filepath.Join(root, "unseen")
	require.NoError(t, os.Mkdir(unseen, 0o755))

	require.False(t, w.sync(), "no spec changed")
	require.True(t, w.watched[sub])
	require.True(t, w.watched[unseen])
	require.Subset(t, w.fsw.WatchList(), []string{root, sub, unseen})

	// Vanished folders are dropped from the bookkeeping.
	require.NoError(t, os.Remove(unseen))
	require.False(t, w.sync())
	require.False(t, w.watched[unseen])

	// A new spec is a change.
	writeFile(t, filepath.Join(sub, "agent.yaml"), "v: 1\n")
	require.True(t, w.sync())
	require.False(t, w.sync(), "the baseline moved on")
}

func TestFingerprint(t *testing.T) {
	root := t.TempDir()
	spec := filepath.Join(root, "agent.yaml")
	writeFile(t, spec, "v: 1\n")
	fp := func() scan {
		s := fingerprint([]string{root}, isRelevant)
		require.NoError(t, s.err)
		return s
	}

	base := fp()
	require.Equal(t, 1, base.files)
	require.Equal(t, []string{root}, base.dirs)
	require.Equal(t, base.sum, fp().sum, "fingerprint must be stable")

	// Files and folders the loader does not read change nothing.
	for _, name := range []string{".agent.yaml.swp", "agent.yaml~", "4913", "notes.txt", filepath.Join(".git", "x.yaml")} {
		writeFile(t, filepath.Join(root, name), "junk\n")
	}
	require.Equal(t, base.sum, fp().sum, "ignored files must not change the fingerprint")

	// Size change.
	writeFile(t, spec, "v: 10\n")
	sized := fp()
	require.NotEqual(t, base.sum, sized.sum, "size change")

	// Same size, new mtime (a rewrite with equal-length content).
	fi, err := os.Stat(spec)
	require.NoError(t, err)
	require.NoError(t, os.Chtimes(spec, fi.ModTime(), fi.ModTime().Add(time.Second)))
	touched := fp()
	require.NotEqual(t, sized.sum, touched.sum, "mtime change")

	// A spec in a subfolder.
	sub := filepath.Join(root, "team")
	writeFile(t, filepath.Join(sub, "b.yml"), "v: 1\n")
	nested := fp()
	require.NotEqual(t, touched.sum, nested.sum, "new spec in a subfolder")
	require.Equal(t, 2, nested.files)
	require.Equal(t, []string{root, sub}, nested.dirs, "hidden folders are not walked")

	// A rename changes the path.
	require.NoError(t, os.Rename(filepath.Join(sub, "b.yml"), filepath.Join(sub, "c.yml")))
	require.NotEqual(t, nested.sum, fp().sum, "rename")
}

func TestFingerprintFollowsSymlinks(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "..v1", "agent.yaml"), "v: 1\n")
	writeFile(t, filepath.Join(root, "..v2", "agent.yaml"), "v: 22\n")
	if err := os.Symlink("..v1", filepath.Join(root, "..data")); err != nil {
		t.Skipf("symlinks not supported: %v", err)
	}
	require.NoError(t, os.Symlink(filepath.Join("..data", "agent.yaml"), filepath.Join(root, "agent.yaml")))
	before := fingerprint([]string{root}, isRelevant)
	require.Equal(t, 1, before.files)

	require.NoError(t, os.Remove(filepath.Join(root, "..data")))
	require.NoError(t, os.Symlink("..v2", filepath.Join(root, "..data")))
	require.NotEqual(t, before.sum, fingerprint([]string{root}, isRelevant).sum, "the link target changed")
}

func TestCancelStopsRunPromptly(t *testing.T) {
	baseline := goleak.IgnoreCurrent()

	dir := t.TempDir()
	w, err := New(testOptions(t, dir))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	// Make sure Run is up and busy before cancelling, with a signal left
	// unread.
	writeFile(t, filepath.Join(dir, "agent.yaml"), "v: 1\n")
	expectSignal(t, w, "write before cancel")
	writeFile(t, filepath.Join(dir, "agent.yaml"), "v: 2\n")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
	goleak.VerifyNone(t, baseline)

	require.Error(t, w.Run(t.Context()), "Run must be called only once")
}

func TestRunWithCancelledContext(t *testing.T) {
	w, err := New(testOptions(t, t.TempDir()))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, w.Run(ctx))
}

func TestNew(t *testing.T) {
	t.Run("missing dir", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		_, err := New(Options{Dirs: []string{missing}})
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.ErrorContains(t, err, missing)
	})
	t.Run("file instead of dir", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "agent.yaml")
		writeFile(t, file, "v: 1\n")
		_, err := New(Options{Dirs: []string{file}})
		require.ErrorContains(t, err, "not a directory")
	})
	t.Run("no dirs", func(t *testing.T) {
		_, err := New(Options{})
		require.Error(t, err)
	})
	t.Run("negative debounce", func(t *testing.T) {
		_, err := New(Options{Dirs: []string{t.TempDir()}, Debounce: -time.Millisecond})
		require.Error(t, err)
	})
	t.Run("defaults and nested dirs", func(t *testing.T) {
		root := t.TempDir()
		sub := filepath.Join(root, "sub")
		require.NoError(t, os.Mkdir(sub, 0o755))
		w, err := New(Options{Dirs: []string{sub, root, root}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, w.fsw.Close()) })

		require.Equal(t, defaultDebounce, w.debounce)
		require.LessOrEqual(t, w.debounce, 100*time.Millisecond)
		require.Equal(t, defaultRescan, w.rescan)
		require.NotNil(t, w.log)
		require.Equal(t, []string{root}, w.roots, "a dir inside another is covered by it")
		require.True(t, w.watched[sub])
	})
	t.Run("rescan disabled", func(t *testing.T) {
		w, err := New(Options{Dirs: []string{t.TempDir()}, Rescan: -1})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, w.fsw.Close()) })
		require.Negative(t, w.rescan)
	})
}

func TestIsRelevant(t *testing.T) {
	for name, want := range map[string]bool{
		"agent.yaml":      true,
		"agent.yml":       true,
		"AGENT.YAML":      true,
		"a.b.yaml":        true,
		"agent.json":      false,
		"notes.txt":       false,
		"yaml":            false,
		".agent.yaml":     false,
		"#agent.yaml#":    false,
		"agent.yaml~":     false,
		".agent.yaml.swp": false,
		"agent.yaml.swx":  false,
		"agent.yaml.swo":  false,
		"agent.yaml.tmp":  false,
		"agent.yaml.bak":  false,
		"4913":            false,
	} {
		require.Equal(t, want, isRelevant(name), name)
	}
}

func TestDebounceDelay(t *testing.T) {
	const q = 50 * time.Millisecond
	first := time.Now()
	require.Equal(t, q, debounceDelay(first, first, q, 4*q), "first event waits the quiet period")
	require.Equal(t, q, debounceDelay(first, first.Add(2*q), q, 4*q), "later events reset it")
	require.Equal(t, q/2, debounceDelay(first, first.Add(7*q/2), q, 4*q), "cut short by the max wait")
	require.Equal(t, time.Duration(0), debounceDelay(first, first.Add(5*q), q, 4*q), "overdue: now")
}
