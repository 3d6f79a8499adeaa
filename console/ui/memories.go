package ui

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine/memory"
)

// memoriesPerPage is the memories page's page size.
const memoriesPerPage = 25

// memoriesPage lists memories: a key bound to a user sees only that user's,
// whatever the user filter says (the same rule as the API's).
func (h *Handler) memoriesPage(c *gin.Context) {
	p := view.Memories{Enabled: h.opts.Memories != nil, Bound: auth.Of(c).Bound(), Search: strings.TrimSpace(c.Query("q")),
		Page: pageParam(c), CanWrite: auth.Of(c).Has(auth.ScopeSessionsWrite)}
	p.User = auth.Of(c).UserID(strings.TrimSpace(c.Query("user")))
	if p.Enabled {
		rows, total, err := h.opts.Memories.List(c.Request.Context(), memory.Query{UserID: p.User, Search: p.Search, Page: p.Page, Limit: memoriesPerPage})
		if err != nil {
			h.fail(c, "memories", err)
			return
		}
		p.Rows, p.Total, p.TotalPages = rows, total, pageCount(total, memoriesPerPage)
	}
	h.render(c, http.StatusOK, view.MemoriesPage(h.frame(c, "Memories", "memories"), p))
}

// memoriesBack is where a memory form returns: the list it was sent from,
// never another site.
func memoriesBack(c *gin.Context) string {
	if b := c.PostForm("back"); strings.HasPrefix(b, "/ui/memories") && !strings.ContainsAny(b, "\\\r\n") {
		return b
	}
	return "/ui/memories"
}

func (h *Handler) editMemoryFromConsole(c *gin.Context) {
	text := c.PostForm("memory")
	topics := []string{}
	for _, t := range strings.Split(c.PostForm("topics"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			topics = append(topics, t)
		}
	}
	if _, err := h.opts.Memories.Update(c.Request.Context(), auth.Of(c).UserID(""), c.Param("id"), memory.Patch{Memory: &text, Topics: &topics}); err != nil {
		h.fail(c, "the memory", err)
		return
	}
	c.Redirect(http.StatusSeeOther, memoriesBack(c))
}

func (h *Handler) deleteMemoryFromConsole(c *gin.Context) {
	gone, err := h.opts.Memories.Delete(c.Request.Context(), auth.Of(c).UserID(""), []string{c.Param("id")})
	if err != nil {
		h.fail(c, "the memory", err)
		return
	}
	if len(gone) == 0 {
		h.fail(c, "the memory", memory.ErrNotFound)
		return
	}
	c.Redirect(http.StatusSeeOther, memoriesBack(c))
}
