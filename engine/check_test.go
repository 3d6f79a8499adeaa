package engine_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

// TestCheckOverlay: Check sees a buffer in place of a file (or added as a
// new one) with the reload's cross-file validation, and changes nothing:
// the snapshot serving and the next reload are as if it never ran.
func TestCheckOverlay(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("a.yaml", agentYAML("a", "v1"))
	f.write("team.yaml", "kind: Team\nname: t\nmode: route\nmodel: echo\nmembers: [a]\n")
	e := f.engine()
	defer e.Close()
	snap := e.Current()

	tests := []struct {
		name    string
		overlay map[string][]byte
		want    []string // file:line:col of each diagnostic
	}{
		{"unchanged", map[string][]byte{filepath.Join(f.dir, "a.yaml"): []byte(agentYAML("a", "v2"))}, nil},
		{"unknown tool", map[string][]byte{filepath.Join(f.dir, "a.yaml"): []byte(agentYAML("a", "v2", "nope"))},
			[]string{"a.yaml:5:9"}}, // the team keeps the last good a
		{"renamed away: the team loses its member", map[string][]byte{filepath.Join(f.dir, "a.yaml"): []byte(agentYAML("b", "v2"))},
			[]string{"team.yaml:1:1", "team.yaml:5:11"}},
		{"a new file clashing with a name", map[string][]byte{filepath.Join(f.dir, "sub", "new.yaml"): []byte(agentYAML("a", "v3"))},
			[]string{"a.yaml:2:7", "sub/new.yaml:2:7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := e.Check(tt.overlay)
			require.NoError(t, err)
			var got []string
			for _, d := range ds {
				rel, err := filepath.Rel(f.dir, d.Pos.File)
				require.NoError(t, err)
				got = append(got, spec.Pos{File: filepath.ToSlash(rel), Line: d.Pos.Line, Col: d.Pos.Col}.String())
			}
			require.Equal(t, tt.want, got, "%v", ds)
		})
	}
	require.Same(t, snap, e.Current())
	res := e.Load()
	require.False(t, res.Changed, "the next reload finds nothing changed")
	require.Equal(t, snap.Generation(), e.Current().Generation())
}

// TestCheckDuringReloads: an editor checks while the folder reloads (run
// it with -race): checks and reloads share the loader's cache and the
// serving snapshot, and neither disturbs the other.
func TestCheckDuringReloads(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("a.yaml", agentYAML("a", "v1"))
	e := f.engine()
	defer e.Close()
	overlay := map[string][]byte{filepath.Join(f.dir, "a.yaml"): []byte(agentYAML("a", "v2", "nope"))}
	done := make(chan struct{})
	checked := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				checked <- n
				return
			default:
			}
			ds, err := e.Check(overlay)
			if err != nil || len(ds) != 1 {
				checked <- -1
				return
			}
			n++
		}
	}()
	for i := range 20 {
		f.write("b.yaml", agentYAML("b", "v"+string(rune('a'+i))))
		res := e.Load()
		require.True(t, res.Success(), "%v", res.Err)
		require.Empty(t, e.Current().Diagnostics(), "a check's buffer reached the served snapshot")
	}
	close(done)
	require.Positive(t, <-checked, "every check saw exactly the buffer's problem")
}
