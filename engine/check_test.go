package engine_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
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
	var checks, wrong atomic.Int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			default:
			}
			if ds, err := e.Check(overlay); err != nil || len(ds) != 1 {
				wrong.Add(1)
			}
			checks.Add(1)
		}
	}()
	// At least 20 reloads, and on until 20 checks ran alongside them.
	for i := 0; i < 20 || (checks.Load() < 20 && i < 5000); i++ {
		f.write("b.yaml", agentYAML("b", fmt.Sprintf("v%d", i)))
		res := e.Load()
		require.True(t, res.Success(), "%v", res.Err)
		require.Empty(t, e.Current().Diagnostics(), "a check's buffer reached the served snapshot")
	}
	close(done)
	<-stopped
	require.GreaterOrEqual(t, checks.Load(), int64(20))
	require.Zero(t, wrong.Load(), "every check saw exactly the buffer's problem")
}

// TestCheckLeavesTheServingRerankModelAlone: the loader shares an unchanged
// Knowledge document between the serving set and a check's, so resolving
// its rerank Model during validation made an unsaved edit of that Model
// change live searches (and raced with them). The Model is resolved on a
// copy, per snapshot; a save and reload still brings the edit in.
func TestCheckLeavesTheServingRerankModelAlone(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	model := func(port string) string {
		return "kind: Model\nname: reranker\nprovider: openai\nmodel: rerank-test\nbase_url: http://127.0.0.1:" + port + "\n"
	}
	f.write("kb.yaml", "kind: Knowledge\nname: docs\nrerank: {model: reranker}\n")
	f.write("model.yaml", model("1"))
	e := f.engine()
	defer e.Close()
	baseURL := func(s interface{ Knowledge() []*spec.Knowledge }) string {
		ks := s.Knowledge()
		require.Len(t, ks, 1)
		m := ks[0].Rerank.ModelSpec()
		require.NotNil(t, m, "the snapshot resolves the rerank model")
		return m.BaseURL
	}
	serving := e.Current()
	require.Equal(t, "http://127.0.0.1:1", baseURL(serving))

	ds, err := e.Check(map[string][]byte{filepath.Join(f.dir, "model.yaml"): []byte(model("2"))})
	require.NoError(t, err)
	require.Empty(t, ds)
	require.Equal(t, "http://127.0.0.1:1", baseURL(e.Current()), "an unsaved edit changed the serving rerank model")

	f.write("model.yaml", model("2"))
	require.True(t, e.Load().Changed)
	require.Equal(t, "http://127.0.0.1:2", baseURL(e.Current()), "a saved edit is served")
	require.Equal(t, "http://127.0.0.1:1", baseURL(serving), "the earlier snapshot keeps its model")
}
