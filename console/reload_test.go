package console_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec/watch"
)

// TestHotReloadUnderLoad: while 16 clients stream runs continuously, the
// agent's YAML is edited 20 times (one edit broken). No request fails, every
// run started after a reload became visible uses the new instructions, and the
// broken edit keeps the previous version serving and shows in GET /config.
func TestHotReloadUnderLoad(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	w, err := watch.New(watch.Options{Dirs: []string{ts.dir}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	var bg sync.WaitGroup
	bg.Go(func() { _ = w.Run(ctx) })
	bg.Go(func() { _ = ts.eng.Run(ctx, w.C()) })
	defer func() { cancel(); bg.Wait() }()

	var minVersion atomic.Int64 // instructions version every new run must see at least
	var runs, failures atomic.Int64
	var failMu sync.Mutex
	var failMsgs []string
	fail := func(format string, args ...any) {
		failures.Add(1)
		failMu.Lock()
		failMsgs = append(failMsgs, fmt.Sprintf(format, args...))
		failMu.Unlock()
	}
	var stop atomic.Bool
	var clients sync.WaitGroup
	for range 16 {
		clients.Go(func() {
			for !stop.Load() {
				want := minVersion.Load()
				req, _ := http.NewRequest(http.MethodPost, ts.url+"/agents/calc/runs", strings.NewReader(`{"message":"hi"}`))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					fail("request: %v", err)
					continue
				}
				frames := readFrames(t, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || len(frames) == 0 || frames[len(frames)-1].Event != "RunCompleted" {
					fail("status %d, frames %v", resp.StatusCode, names(frames))
					continue
				}
				content, _ := frames[len(frames)-1].Data["content"].(string)
				v, err := strconv.Atoi(strings.TrimPrefix(strings.SplitN(content, "|", 2)[0], "system=v"))
				if err != nil {
					fail("unexpected content %q", content)
					continue
				}
				if int64(v) < want {
					fail("a run started after version %d was visible answered with version %d", want, v)
				}
				runs.Add(1)
			}
		})
	}

	edit := func(content string) {
		tmp := filepath.Join(ts.dir, ".specs.yaml.tmp")
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
		require.NoError(t, os.Rename(tmp, filepath.Join(ts.dir, "specs.yaml")))
	}
	waitGeneration := func(gen uint64) {
		require.Eventually(t, func() bool { return ts.eng.Current().Generation() >= gen }, 5*time.Second, 2*time.Millisecond)
	}
	var visible []time.Duration
	for i := 1; i <= 20; i++ {
		time.Sleep(20 * time.Millisecond) // let runs overlap each version
		gen := ts.eng.Current().Generation()
		if i == 10 {
			edit(strings.Replace(fixture, "instructions: v0", "instructions: v10\ntools: [no_such_tool]", 1))
			waitGeneration(gen + 1)
			var cfg struct {
				Objects []struct {
					Name, Status string
					Diagnostics  []struct{ Text string }
				}
			}
			ts.json(http.MethodGet, "/config", "", "", http.StatusOK, &cfg)
			for _, o := range cfg.Objects {
				if o.Name == "calc" {
					require.Equal(t, "stale", o.Status)
					require.Contains(t, o.Diagnostics[0].Text, `unknown tool "no_such_tool"`)
				}
			}
			gen = ts.eng.Current().Generation()
		}
		start := time.Now()
		edit(strings.Replace(fixture, "instructions: v0", "instructions: v"+strconv.Itoa(i), 1))
		waitGeneration(gen + 1)
		visible = append(visible, time.Since(start))
		minVersion.Store(int64(i))
	}
	time.Sleep(50 * time.Millisecond)
	stop.Store(true)
	clients.Wait()
	require.Zero(t, failures.Load(), "%v", failMsgs)
	require.Greater(t, runs.Load(), int64(100))
	t.Logf("%d runs across 20 edits; save-to-visible: %v", runs.Load(), visible)
}
