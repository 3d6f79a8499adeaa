package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
)

// The vendored htmx release.
const (
	HTMXVersion = "2.0.11"
	HTMXSHA256  = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
)

//go:embed static
var embedded embed.FS

// static is the embedded folder's content, rooted at it.
var static = func() fs.FS {
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		panic(err) // the folder is embedded at build time
	}
	return sub
}()

// Static returns the assets, rooted at the static folder.
func Static() fs.FS { return static }

// Versions maps each asset's name to a short hash of its content, for
// cache-busting URLs: assets can then be cached forever.
func Versions() map[string]string {
	out := map[string]string{}
	_ = fs.WalkDir(static, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(static, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[path] = hex.EncodeToString(sum[:6])
		return nil
	})
	return out
}
