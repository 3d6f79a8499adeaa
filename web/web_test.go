package web_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
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
// 60 KB, uncompressed.
func TestScriptBudget(t *testing.T) {
	total := 0
	err := fs.WalkDir(web.Static(), ".", func(path string, d fs.DirEntry, err error) error {
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

func TestVersionsCoverEveryAsset(t *testing.T) {
	v := web.Versions()
	for _, name := range []string{"htmx.min.js", "troupe.js", "troupe.css"} {
		require.Len(t, v[name], 12, name)
	}
}
