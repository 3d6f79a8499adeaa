package web_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/web"
)

func TestVendoredHTMXIsThePinnedRelease(t *testing.T) {
	data, err := fs.ReadFile(web.Static(), "htmx.min.js")
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	require.Equal(t, web.HTMXSHA256, hex.EncodeToString(sum[:]), "htmx.min.js is not the pinned htmx %s", web.HTMXVersion)
	require.Contains(t, string(data), `version:"`+web.HTMXVersion+`"`)
}

// TestScriptBudget keeps the console's JavaScript (htmx plus our glue) under
// 60 KB, uncompressed. The editor's bundle is loaded by the editor page
// alone and has its own budget (TestEditorBudget).
func TestScriptBudget(t *testing.T) {
	total := 0
	err := fs.WalkDir(web.Static(), ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && path == "editor" {
			return fs.SkipDir
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".js") {
			return err
		}
		data, err := fs.ReadFile(web.Static(), path)
		total += len(data)
		return err
	})
	require.NoError(t, err)
	t.Logf("JavaScript: %d bytes", total)
	require.Less(t, total, 60_000)
}

// TestEditorBudget keeps the editor page's bundle (CodeMirror 6 with YAML,
// lint, completion and search, plus our page script) within its budget:
// 500,000 bytes uncompressed and 165,000 gzipped, about 15% over the
// 431,960 and 142,313 it measured when it was first built. Its stylesheet
// stays under 8 KB. A bundle over budget needs a reason, not a new limit.
func TestEditorBudget(t *testing.T) {
	tests := []struct {
		name        string
		raw, zipped int
	}{
		{"editor/editor.js", 500_000, 165_000},
		{"editor/editor.css", 8_000, 3_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := fs.ReadFile(web.Static(), tt.name)
			require.NoError(t, err)
			var z bytes.Buffer
			w, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
			require.NoError(t, err)
			_, err = w.Write(data)
			require.NoError(t, err)
			require.NoError(t, w.Close())
			t.Logf("%s: %d bytes, %d gzipped", tt.name, len(data), z.Len())
			require.Less(t, len(data), tt.raw)
			require.Less(t, z.Len(), tt.zipped)
		})
	}
}

// TestEditorLicences checks LICENSES.txt against the lockfile: each
// package it lists is a bundled (not development) dependency at the pinned
// version, with its licence's text; and the packages the editor is made of
// are listed.
func TestEditorLicences(t *testing.T) {
	lock, err := os.ReadFile("editor/package-lock.json")
	require.NoError(t, err)
	var l struct {
		Packages map[string]struct {
			Version string `json:"version"`
			License string `json:"license"`
			Dev     bool   `json:"dev"`
		} `json:"packages"`
	}
	require.NoError(t, json.Unmarshal(lock, &l))
	data, err := fs.ReadFile(web.Static(), "editor/LICENSES.txt")
	require.NoError(t, err)
	rule := "\n" + strings.Repeat("=", 72) + "\n"
	sections := strings.Split(string(data), rule)[1:] // header, body, header, body...
	require.NotEmpty(t, sections)
	require.Zero(t, len(sections)%2)
	listed := map[string]bool{}
	for i := 0; i < len(sections); i += 2 {
		header, body := sections[i], sections[i+1]
		var name, version, licence string
		_, err := fmt.Sscanf(header, "%s %s (%s", &name, &version, &licence)
		require.NoError(t, err, header)
		p, ok := l.Packages["node_modules/"+name]
		require.True(t, ok, "%s is not in the lockfile", name)
		require.False(t, p.Dev, "%s is a development dependency", name)
		require.Equal(t, p.Version+" ("+p.License+")", version+" ("+licence, name)
		require.Contains(t, body, "Permission is hereby granted", "%s: the MIT licence's text", name)
		listed[name] = true
	}
	for _, name := range []string{"@codemirror/state", "@codemirror/view", "@codemirror/language", "@codemirror/lint", "@codemirror/autocomplete", "@codemirror/lang-yaml", "@lezer/yaml"} {
		require.True(t, listed[name], "%s is bundled; LICENSES.txt must list it", name)
	}
	require.False(t, listed["esbuild"], "the build tool is not bundled")
	bundle, err := fs.ReadFile(web.Static(), "editor/editor.js")
	require.NoError(t, err)
	require.NotContains(t, string(bundle), "sourceMappingURL")
}

func TestVersionsCoverEveryAsset(t *testing.T) {
	v := web.Versions()
	for _, name := range []string{"htmx.min.js", "troupe.js", "troupe.css", "editor/editor.js", "editor/editor.css"} {
		require.Len(t, v[name], 12, name)
	}
}
