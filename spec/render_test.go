package spec_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

func TestResolvedHidesSecrets(t *testing.T) {
	t.Parallel()
	src := "kind: Model\nname: fast\nprovider: openai\nmodel: gpt-4o-mini\napi_key: ${SECRET_KEY}\nbase_url: ${BASE:-https://api.example.com/v1}\n"
	env := func(name string) (string, bool) {
		if name == "SECRET_KEY" {
			return "sk-live-very-secret-value", true
		}
		return "", false
	}
	f := spec.ParseFile("m.yaml", []byte(src), env)
	require.Empty(t, f.Diagnostics)
	out, err := spec.Resolved(f.Docs[0])
	require.NoError(t, err)
	require.NotContains(t, out, "sk-live-very-secret-value")
	require.Contains(t, out, "api_key: ${SECRET_KEY}")
	require.Contains(t, out, "base_url: ${BASE:-https://api.example.com/v1}")
	require.Contains(t, out, "retries: 2", "defaults applied in code are shown")
}

// TestResolvedRoundTrips renders every good document and every example and
// parses the result again: it must decode to the same document.
func TestResolvedRoundTrips(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/good/*.yaml")
	require.NoError(t, err)
	examples, err := filepath.Glob("../agents.d/*.yaml")
	require.NoError(t, err)
	files = append(files, examples...)
	require.NotEmpty(t, files)
	env := func(string) (string, bool) { return "", false }
	for _, path := range files {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		f := spec.ParseFile(path, data, env)
		for _, doc := range f.Docs {
			out, err := spec.Resolved(doc)
			require.NoError(t, err)
			again := spec.ParseFile(path, []byte(out), env)
			require.Len(t, again.Docs, 1, "%s: %s\n%s", path, doc.Header().Path(), out)
			if strings.Contains(string(data), "${") {
				continue // sources replace values: the text differs, not the meaning
			}
			require.Equal(t, doc.Header().Hash(), again.Docs[0].Header().Hash(), "%s: %s renders as\n%s", path, doc.Header().Path(), out)
		}
	}
}
