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
