package spec_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

// FuzzParseFile feeds arbitrary bytes to the loader: it must never panic, and
// every diagnostic must carry a position in the file.
func FuzzParseFile(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	examples, _ := filepath.Glob("../agents.d/*.yaml")
	for _, p := range append(seeds, examples...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("kind: Agent\nname: x\nmodel: echo\nlimits: &l {<<: *l}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file := spec.ParseFile("fuzz.yaml", data, testEnv)
		set := spec.NewSet([]*spec.File{file}, testBuiltins...)
		for _, d := range set.Diagnostics() {
			if d.Pos.File != "fuzz.yaml" || d.Pos.Line < 1 {
				t.Fatalf("diagnostic without a position: %v", d)
			}
		}
		_ = set.Diagnostics().Error()
	})
}

// TestHostileInputIsCheap covers inputs the fuzzer found slow: deep nesting and
// alias expansion must be refused quickly with a diagnostic.
func TestHostileInputIsCheap(t *testing.T) {
	t.Parallel()
	deep := "kind: Agent\nname: deep\nmodel: echo\noutput_schema: " + strings.Repeat("{a: ", 5000) + "1" + strings.Repeat("}", 5000) + "\n"
	laughs := "kind: Agent\nname: laughs\nmodel: echo\nx0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
	for i := 1; i < 9; i++ {
		laughs += fmt.Sprintf("x%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	laughs += "output_schema: {type: object, enum: *a8}\n"
	// Nested merge keys over a wide mapping: few nodes, many copied pairs.
	merges := "kind: Agent\nname: merges\nmodel: echo\nw0: &m0 {"
	for i := range 2000 {
		merges += fmt.Sprintf("k%d: 1, ", i)
	}
	merges += "}\n"
	for i := 1; i < 6; i++ {
		merges += fmt.Sprintf("w%d: &m%d {<<: [*m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d]}\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	merges += "limits: {<<: *m5}\n"
	for name, src := range map[string]string{"deep": deep, "laughs": laughs, "merges": merges} {
		start := time.Now()
		set := spec.NewSet([]*spec.File{spec.ParseFile(name+".yaml", []byte(src), testEnv)})
		require.True(t, set.Diagnostics().HasErrors(), name)
		// The bound catches expansion blowing up (a billion laughs, merge
		// keys copied over and over), which takes minutes and gigabytes,
		// not how fast parsing is: that is the benchmarks' job, and a
		// loaded CI machine takes a second or two here.
		require.Less(t, time.Since(start), 10*time.Second, name)
	}
}
