package ui

import (
	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
)

// registerEditor mounts the spec editor's JSON routes under /ui/editor for
// the console's editor page: the API's handlers (console/editor), behind
// the console's sign-in cookie and same-origin check, for admins only. The
// page itself (GET /ui/editor) is registered with the other pages.
func (h *Handler) registerEditor(r gin.IRouter) {
	if h.opts.Editor == nil {
		return
	}
	h.opts.Editor.Register(r.Group("/ui/editor", h.pageRequire(auth.ScopeAdmin)))
}
