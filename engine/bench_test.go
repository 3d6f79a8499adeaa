package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/watch"
)

// writeBigFolder writes 200 documents over 20 files: 100 agents, 40 tools,
// 20 knowledge bases, 20 models and 20 teams.
func writeBigFolder(tb testing.TB) string {
	dir := tb.TempDir()
	for f := range 20 {
		var b strings.Builder
		doc := func(s string) {
			if b.Len() > 0 {
				b.WriteString("---\n")
			}
			b.WriteString(s)
		}
		doc(fmt.Sprintf("kind: Model\nname: m%d\nprovider: openai\nmodel: gpt-4o-mini\napi_key: ${KEY:-none}\nfallbacks: [anthropic/claude-sonnet-4-5]\n", f))
		doc(fmt.Sprintf("kind: Knowledge\nname: k%d\nsources: [docs/*.md]\nchunking: {strategy: markdown, size: 300}\n", f))
		for t := range 2 {
			doc(fmt.Sprintf("kind: Tool\nname: t%d-%d\ntype: http\nmethod: POST\nurl: https://api.example.com/{id}\nparameters:\n  type: object\n  properties:\n    id: {type: string}\n    body: {type: string}\n  required: [id]\ntimeout: 5s\n", f, t))
		}
		for a := range 5 {
			doc(fmt.Sprintf("kind: Agent\nname: a%d-%d\ndescription: Agent %d of file %d.\nmodel: m%d\ninstructions: |\n  You are agent %d. Be helpful and precise.\ntools: [calculator, t%d-0, t%d-1]\nknowledge: [k%d]\nhistory: 3\nlimits: {max_tool_calls: 5, timeout: 1m}\n", f, a, a, f, f, a, f, f, f))
		}
		doc(fmt.Sprintf("kind: Team\nname: team%d\nmode: coordinate\nmodel: m%d\nmembers: [a%d-0, a%d-1, a%d-2]\n", f, f, f, f, f))
		require.NoError(tb, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.yaml", f)), []byte(b.String()), 0o644))
	}
	return dir
}

// BenchmarkLoadAndCompile200 measures a cold reload of a 200-document folder:
// reading, parsing, decoding, validating and compiling every file.
func BenchmarkLoadAndCompile200(b *testing.B) {
	dir := writeBigFolder(b)
	b.ReportAllocs()
	for b.Loop() {
		set, err := spec.NewLoader(spec.LoaderOptions{Env: noEnv}).Load(dir)
		if err != nil || len(set.Keys()) != 200 || set.Diagnostics().HasErrors() {
			b.Fatalf("load: %v %d %v", err, len(set.Keys()), set.Diagnostics())
		}
		engine.Compile(set, nil, 1, time.Now(), nil)
	}
}

// BenchmarkReload200OneFileChanged measures the usual reload: one file of 20
// changed, the other 19 reused by content hash.
func BenchmarkReload200OneFileChanged(b *testing.B) {
	dir := writeBigFolder(b)
	l := spec.NewLoader(spec.LoaderOptions{Env: noEnv})
	set, err := l.Load(dir)
	require.NoError(b, err)
	prev := engine.Compile(set, nil, 1, time.Now(), nil)
	path := filepath.Join(dir, "f00.yaml")
	orig, err := os.ReadFile(path)
	require.NoError(b, err)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		require.NoError(b, os.WriteFile(path, fmt.Appendf(slices.Clone(orig), "# edit %d\n", i), 0o644))
		set, err := l.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		prev = engine.Compile(set, prev, uint64(i+1), time.Now(), nil)
	}
}

// BenchmarkCompile200 measures Compile alone on an already loaded folder.
func BenchmarkCompile200(b *testing.B) {
	dir := writeBigFolder(b)
	set, err := spec.NewLoader(spec.LoaderOptions{Env: noEnv}).Load(dir)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		engine.Compile(set, nil, 1, time.Now(), nil)
	}
}

// BenchmarkCurrent measures reading the current snapshot, the one operation
// every request performs.
func BenchmarkCurrent(b *testing.B) {
	f := newFolder(b)
	f.write("a.yaml", agentYAML("a", "v1"))
	e := f.engine()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if e.Current() == nil {
				b.Fatal("nil snapshot")
			}
		}
	})
}

// BenchmarkSaveToVisible measures the time from writing a file to a new snapshot
// being current, through the real watcher and reload loop. It reports p50 and
// p99 in milliseconds; the watcher's debounce (50ms) dominates.
func BenchmarkSaveToVisible(b *testing.B) {
	f := newFolder(b)
	f.write("a.yaml", agentYAML("a", "v0"))
	e := f.engine()
	w, err := watch.New(watch.Options{Dirs: []string{f.dir}})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	wg.Go(func() { _ = e.Run(ctx, w.C()) })
	defer func() { cancel(); wg.Wait() }()

	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		want := fmt.Sprint("v", i)
		start := time.Now()
		f.replace("a.yaml", agentYAML("a", want))
		for {
			if a, ok := e.Current().Agent("a"); ok && a.Spec.Instructions == want {
				break
			}
			if time.Since(start) > 5*time.Second {
				b.Fatal("change never became visible")
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
