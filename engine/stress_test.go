package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/watch"
)

// checkConsistent verifies that a snapshot only refers to objects of its own:
// every compiled reference points at the definition the snapshot serves.
func checkConsistent(s *engine.Snapshot) error {
	served := func(k spec.Key) spec.Document {
		if o, ok := s.Object(k); ok {
			return o.Doc
		}
		return nil
	}
	for _, a := range s.Agents() {
		if served(spec.Key{Kind: spec.KindAgent, Name: a.Name()}) != a.Spec {
			return fmt.Errorf("agent %s: compiled from a definition the snapshot does not serve", a.Name())
		}
		for _, t := range a.Tools {
			if !t.Builtin && served(spec.Key{Kind: spec.KindTool, Name: t.Name}) != t.Spec {
				return fmt.Errorf("agent %s: tool %s is not the snapshot's", a.Name(), t.Name)
			}
		}
	}
	for _, tm := range s.Teams() {
		for _, m := range tm.Members {
			if m.Agent != nil {
				if a, ok := s.Agent(m.Name()); !ok || a != m.Agent {
					return fmt.Errorf("team %s: member %s is not the snapshot's", tm.Name(), m.Name())
				}
			} else if t, ok := s.Team(m.Name()); !ok || t != m.Team {
				return fmt.Errorf("team %s: member team %s is not the snapshot's", tm.Name(), m.Name())
			}
		}
	}
	for _, o := range s.Objects() {
		if (o.Doc == nil) != (o.Status == engine.StatusBroken) {
			return fmt.Errorf("%s: status %s with doc %v", o.Key, o.Status, o.Doc != nil)
		}
	}
	return nil
}

// TestReloadStress edits the folder 200 times (writes, atomic replaces, renames,
// deletes and broken edits) while 8 readers check every snapshot they see and
// the real watcher drives the reload loop.
func TestReloadStress(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	// anchor is always defined; its broken edits must never be served.
	f.write("anchor.yaml", agentYAML("anchor", "good-0", "lookup")+"---\n"+toolYAML)
	f.write("team.yaml", "kind: Team\nname: crew\nmode: route\nmodel: echo\nmembers: [anchor]\n")
	e := f.engine()
	w, err := watch.New(watch.Options{Dirs: []string{f.dir}, Debounce: 10 * time.Millisecond, Rescan: 200 * time.Millisecond})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	var bg sync.WaitGroup
	bg.Go(func() { _ = w.Run(ctx) })
	bg.Go(func() { _ = e.Run(ctx, w.C()) })

	var stop atomic.Bool
	var observed atomic.Int64
	errs := make(chan error, 8)
	var readers sync.WaitGroup
	for range 8 {
		readers.Go(func() {
			var lastGen uint64
			for !stop.Load() {
				s := e.Current()
				if s.Generation() < lastGen {
					errs <- fmt.Errorf("generation went back from %d to %d", lastGen, s.Generation())
					return
				}
				if s.Generation() != lastGen {
					observed.Add(1)
				}
				lastGen = s.Generation()
				if err := checkConsistent(s); err != nil {
					errs <- err
					return
				}
				a, ok := s.Agent("anchor")
				if !ok || !strings.HasPrefix(a.Spec.Instructions, "good-") {
					errs <- fmt.Errorf("generation %d serves a broken anchor (%v)", s.Generation(), ok)
					return
				}
			}
		})
	}

	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"f0.yaml", "f1.yaml", "f2.yaml", "f3.yaml", "sub/f4.yaml", "sub/f5.yaml"}
	exists := map[string]bool{}
	good := 0
	for i := range 200 {
		name := names[rng.IntN(len(names))]
		content := agentYAML(strings.TrimSuffix(filepath.Base(name), ".yaml"), fmt.Sprint("gen-", i), "calculator")
		switch op := rng.IntN(6); {
		case op == 0:
			f.write(name, content)
			exists[name] = true
		case op == 1:
			require.NoError(t, os.MkdirAll(filepath.Join(f.dir, filepath.Dir(name)), 0o755))
			tmp := filepath.Join(f.dir, filepath.Dir(name), "."+filepath.Base(name)+".tmp")
			require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
			require.NoError(t, os.Rename(tmp, filepath.Join(f.dir, name)))
			exists[name] = true
		case op == 2 && exists[name]:
			to := names[rng.IntN(len(names))]
			if !exists[to] {
				require.NoError(t, os.Rename(filepath.Join(f.dir, name), filepath.Join(f.dir, to)))
				// The agent keeps its name in the new file.
				delete(exists, name)
				exists[to] = true
			}
		case op == 3 && exists[name]:
			f.remove(name)
			delete(exists, name)
		case op == 4:
			// Broken edits of the anchor: a syntax error or an invalid reference.
			if rng.IntN(2) == 0 {
				f.replace("anchor.yaml", "kind: Agent\nname: anchor\n  model: [broken\n")
			} else {
				f.replace("anchor.yaml", agentYAML("anchor", "bad-"+fmt.Sprint(i), "missing_tool")+"---\n"+toolYAML)
			}
		default:
			good++
			f.replace("anchor.yaml", agentYAML("anchor", fmt.Sprint("good-", good), "lookup")+"---\n"+toolYAML)
		}
		if i%10 == 0 {
			e.Trigger()
		}
		time.Sleep(time.Millisecond)
	}
	f.replace("anchor.yaml", agentYAML("anchor", "good-final", "lookup")+"---\n"+toolYAML)
	res, err := e.Reload(ctx)
	require.NoError(t, err)
	require.True(t, res.Success())
	stop.Store(true)
	readers.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	cancel()
	bg.Wait()

	// The final snapshot equals a fresh load of the folder.
	got := e.Current()
	fresh, err := engine.New(engine.Options{Dirs: []string{f.dir}, Env: noEnv})
	require.NoError(t, err)
	want := fresh.Current()
	require.Equal(t, want.Version(), got.Version())
	require.Equal(t, summarize(want), summarize(got))
	a, _ := got.Agent("anchor")
	require.Equal(t, "good-final", a.Spec.Instructions)
	require.Greater(t, observed.Load(), int64(8), "readers saw reloads happen during the edits")
	t.Logf("generations: %d; snapshots observed by readers: %d", got.Generation(), observed.Load())
}

// summarize describes a snapshot's objects by status and content hash.
func summarize(s *engine.Snapshot) map[string]string {
	out := map[string]string{}
	for _, o := range s.Objects() {
		h := ""
		if o.Doc != nil {
			h = o.Doc.Header().Hash()
		}
		out[o.Key.String()] = string(o.Status) + " " + h
	}
	return out
}
