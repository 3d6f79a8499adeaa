package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
)

// editorSchema is the spec language's JSON Schema, for the editor's
// completion, with the builtin tools the engine registers by default, and a
// short hash of it for its cacheable URL. It depends only on the binary.
var editorSchema = sync.OnceValues(func() ([]byte, string) {
	data := spec.SchemaJSON(engine.DefaultTools(engine.ToolOptions{}).Builtins())
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:6])
})

// editorPage serves /ui/editor: the page CodeMirror runs in. The bundle it
// loads (web/static/editor) does the rest through the editor's JSON routes.
func (h *Handler) editorPage(c *gin.Context) {
	_, version := editorSchema()
	h.render(c, http.StatusOK, view.EditorPage(h.frame(c, "Edit files", "config"), view.Editor{
		Path:   c.Query("path"),
		New:    c.Query("new"),
		Schema: "/ui/editor/schema.json?v=" + version,
		Script: h.asset("editor/editor.js"),
		Style:  h.asset("editor/editor.css"),
	}))
}

// editorSchemaJSON serves the JSON Schema the editor completes from; with
// its version in the query it is cached for good.
func (h *Handler) editorSchemaJSON(c *gin.Context) {
	data, version := editorSchema()
	if c.Query("v") == version {
		c.Header("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		c.Header("Cache-Control", "no-cache")
	}
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "application/schema+json", data)
}

// editURL is the editor's page for a spec file; "" when there is no
// editor, the key may not edit, or the file is not in a folder the editor
// edits.
func (h *Handler) editURL(c *gin.Context, file string) string {
	if h.opts.Editor == nil || file == "" || !auth.Of(c).Has(auth.ScopeAdmin) {
		return ""
	}
	p, ok := h.opts.Editor.EditorPath(file)
	if !ok {
		return ""
	}
	return view.EditURL(p)
}
