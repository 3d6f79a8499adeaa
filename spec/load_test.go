package spec_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

const agentSpec = "kind: Agent\nname: a\nmodel: echo\n"

// TestLoaderReadsOnlyBoundedRegularFilesInside checks that a spec file that
// is not a regular file, is larger than the limit (whatever stat says), or
// resolves out of the folder becomes a diagnostic on that file: never an
// endless read (a link to /dev/zero ran the server out of memory), never a
// blocked reload (a FIFO's open waits for a writer), never a file of the host.
func TestLoaderReadsOnlyBoundedRegularFilesInside(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup prepares x.yaml in dir; outside is a folder beside it.
		setup     func(t *testing.T, dir, outside string)
		readRoots []string // "OUTSIDE" is the folder beside it
		file      bool     // load x.yaml by name, not the folder
		wantMsg   string
		wantAgent bool
	}{
		{
			name: "symlink to /dev/zero",
			setup: func(t *testing.T, dir, _ string) {
				require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "x.yaml")))
			},
			wantMsg: "spec file resolves to /dev/zero, outside the spec folder and the configured read roots: move the file into the folder or add its folder to the read roots (--read-roots, TROUPE_READ_ROOTS)",
		},
		{
			name: "symlink to /dev/zero in a read root",
			setup: func(t *testing.T, dir, _ string) {
				require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "x.yaml")))
			},
			readRoots: []string{"/dev"},
			wantMsg:   "spec file is a character device, not a regular file: only regular files are read",
		},
		{
			name: "symlink to /dev/zero named on the command line",
			setup: func(t *testing.T, dir, _ string) {
				require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "x.yaml")))
			},
			file:    true,
			wantMsg: "spec file is a character device, not a regular file: only regular files are read",
		},
		{
			name:    "fifo",
			setup:   func(t *testing.T, dir, _ string) { mkfifo(t, filepath.Join(dir, "x.yaml")) },
			wantMsg: "spec file is a named pipe, not a regular file: only regular files are read",
		},
		{
			name:    "fifo named on the command line",
			setup:   func(t *testing.T, dir, _ string) { mkfifo(t, filepath.Join(dir, "x.yaml")) },
			file:    true,
			wantMsg: "spec file is a named pipe, not a regular file: only regular files are read",
		},
		{
			name: "larger than the limit",
			setup: func(t *testing.T, dir, _ string) {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "x.yaml"), make([]byte, 2048), 0o644))
			},
			wantMsg: "file is larger than the limit of 1024 bytes: split it into smaller files",
		},
		{
			name: "symlink out of the folder",
			setup: func(t *testing.T, dir, outside string) {
				require.NoError(t, os.WriteFile(filepath.Join(outside, "x.yaml"), []byte(agentSpec), 0o644))
				require.NoError(t, os.Symlink(filepath.Join(outside, "x.yaml"), filepath.Join(dir, "x.yaml")))
			},
			wantMsg: "spec file resolves to OUTSIDE/x.yaml, outside the spec folder and the configured read roots: move the file into the folder or add its folder to the read roots (--read-roots, TROUPE_READ_ROOTS)",
		},
		{
			name: "symlink into a read root",
			setup: func(t *testing.T, dir, outside string) {
				require.NoError(t, os.WriteFile(filepath.Join(outside, "x.yaml"), []byte(agentSpec), 0o644))
				require.NoError(t, os.Symlink(filepath.Join(outside, "x.yaml"), filepath.Join(dir, "x.yaml")))
			},
			readRoots: []string{"OUTSIDE"},
			wantAgent: true,
		},
		{
			// A Kubernetes ConfigMap volume: x.yaml → ..data/x.yaml,
			// ..data → ..2026_01_01, all inside the folder.
			name: "configmap links inside the folder",
			setup: func(t *testing.T, dir, _ string) {
				require.NoError(t, os.MkdirAll(filepath.Join(dir, "..2026_01_01"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dir, "..2026_01_01", "x.yaml"), []byte(agentSpec), 0o644))
				require.NoError(t, os.Symlink("..2026_01_01", filepath.Join(dir, "..data")))
				require.NoError(t, os.Symlink(filepath.Join("..data", "x.yaml"), filepath.Join(dir, "x.yaml")))
			},
			wantAgent: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			dir, outside := filepath.Join(base, "agents.d"), filepath.Join(base, "outside")
			require.NoError(t, os.Mkdir(dir, 0o755))
			require.NoError(t, os.Mkdir(outside, 0o755))
			tt.setup(t, dir, outside)
			opts := spec.LoaderOptions{Env: testEnv, MaxFileSize: 1024}
			for _, r := range tt.readRoots {
				opts.ReadRoots = append(opts.ReadRoots, strings.ReplaceAll(r, "OUTSIDE", outside))
			}
			target := dir
			if tt.file {
				target = filepath.Join(dir, "x.yaml")
			}
			set := loadWithin(t, spec.NewLoader(opts), target)
			if tt.wantAgent {
				require.Empty(t, set.Diagnostics())
				require.NotNil(t, set.Agent("a"))
				return
			}
			realOutside, err := filepath.EvalSymlinks(outside)
			require.NoError(t, err)
			path := filepath.Join(dir, "x.yaml")
			want := spec.Diagnostics{{Pos: spec.Pos{File: path, Line: 1, Col: 1}, Severity: spec.Error,
				Msg: strings.ReplaceAll(tt.wantMsg, "OUTSIDE", realOutside)}}
			require.Equal(t, want, set.Diagnostics())
			require.True(t, set.Files()[0].Failed)
		})
	}
}

// loadWithin loads dir, failing the test if the load does not return within
// a few seconds (a read blocked on a FIFO, or one that never ends).
func loadWithin(t *testing.T, l *spec.Loader, dir string) *spec.Set {
	t.Helper()
	type result struct {
		set *spec.Set
		err error
	}
	done := make(chan result, 1)
	go func() {
		set, err := l.Load(dir)
		done <- result{set, err}
	}()
	select {
	case r := <-done:
		require.NoError(t, r.err)
		return r.set
	case <-time.After(5 * time.Second):
		t.Fatal("loading the spec folder did not return: a read blocked or never ended")
		return nil
	}
}

// mkfifo makes a named pipe; the cleanup opens its write end once, so a
// reader blocked in open (the bug under test) is released.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, syscall.Mkfifo(path, 0o644))
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = f.Close()
		}
	})
}
