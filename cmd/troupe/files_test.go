package main

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCheckConfinesKnowledgeSources checks that troupe check reports, at
// its position, a knowledge source that reaches outside the spec folder (it
// ingested /etc/shadow), unless a read root allows the folder it names.
func TestCheckConfinesKnowledgeSources(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		source  string
		roots   bool // --read-roots names the shared folder beside the spec folder
		wantOut string
	}{
		{name: "climbs out", source: "../../../../../../etc/*",
			wantOut: `kb.yaml:3:11: knowledge.kb.sources[0]: source "../../../../../../etc/*" reaches outside the spec folder: keep sources inside it, or add their folder to the read roots (--read-roots, TROUPE_READ_ROOTS)`},
		{name: "absolute", source: "/etc/*",
			wantOut: `kb.yaml:3:11: knowledge.kb.sources[0]: source "/etc/*" reaches outside the spec folder: keep sources inside it, or add their folder to the read roots (--read-roots, TROUPE_READ_ROOTS)`},
		{name: "inside", source: "docs/../docs/*.md"},
		{name: "in a read root", source: "../shared/*.md", roots: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			dir := filepath.Join(base, "agents.d")
			require.NoError(t, os.Mkdir(dir, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "kb.yaml"), []byte("kind: Knowledge\nname: kb\nsources: [\""+tt.source+"\"]\n"), 0o644))
			args := []string{"check", "--dir", dir}
			if tt.roots {
				args = append(args, "--read-roots", filepath.Join(base, "shared"))
			}
			var out, errOut bytes.Buffer
			err := run(t.Context(), args, noEnv, &out, &errOut)
			if tt.wantOut == "" {
				require.NoError(t, err, out.String())
				return
			}
			require.Equal(t, exitError(1), err)
			require.Equal(t, dir+string(filepath.Separator)+tt.wantOut+"\n", out.String())
		})
	}
}

// TestIngestRefusesNonRegularFiles checks that troupe ingest reports a FIFO
// or a device named on its command line instead of blocking on it or reading
// it until memory runs out.
func TestIngestRefusesNonRegularFiles(t *testing.T) {
	t.Parallel()
	pipe := filepath.Join(t.TempDir(), "pipe.md")
	require.NoError(t, syscall.Mkfifo(pipe, 0o644))
	t.Cleanup(func() { // releases a reader blocked in open (the bug under test)
		if f, err := os.OpenFile(pipe, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = f.Close()
		}
	})
	db := filepath.Join(t.TempDir(), "t.db")
	var out, errOut bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), []string{"ingest", "--dir", "../../agents.d", "--db", db, "product-docs", pipe, "/dev/zero"}, noEnv, &out, &errOut)
	}()
	select {
	case err := <-done:
		require.Equal(t, exitError(1), err, errOut.String())
	case <-time.After(10 * time.Second):
		t.Fatal("troupe ingest did not return: a read blocked or never ended")
	}
	require.Equal(t, "✗ pipe.md: read "+pipe+": a named pipe, not a regular file\n✗ zero: read /dev/zero: a character device, not a regular file\n", out.String())
}
