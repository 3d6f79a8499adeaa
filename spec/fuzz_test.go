package spec_test

import (
	"os"
	"path/filepath"
	"testing"

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
		set := spec.NewSet([]*spec.File{file})
		for _, d := range set.Diagnostics() {
			if d.Pos.File != "fuzz.yaml" || d.Pos.Line < 1 {
				t.Fatalf("diagnostic without a position: %v", d)
			}
		}
		_ = set.Diagnostics().Error()
	})
}
