package api

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine"
)

// apiDocs are the OpenAPI document and docs page of one snapshot, rendered
// once: building them walks every agent and team, which for a folder of
// tens of thousands of agents is tens of megabytes of work that every
// request would otherwise repeat.
type apiDocs struct {
	snap *engine.Snapshot
	json []byte
	html []byte
}

// apiDocsCache holds the documents of the latest snapshot asked for.
type apiDocsCache struct {
	mu     sync.Mutex
	docs   *apiDocs
	builds int // how many times documents were built, for tests
}

// apiDocs returns the documents of snap, building them on first use.
// Requests pinned to an older snapshot than the cached one get documents
// built for them but not cached, so a reload is never undone.
func (h *Handler) apiDocs(snap *engine.Snapshot) (*apiDocs, error) {
	c := &h.docsCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.docs != nil && c.docs.snap == snap {
		return c.docs, nil
	}
	doc := h.openAPIDocument(snap)
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	d := &apiDocs{snap: snap, json: b, html: renderDocs(doc)}
	c.builds++
	if c.docs == nil || snap.Generation() >= c.docs.snap.Generation() {
		c.docs = d
	}
	return d, nil
}

// openapi answers GET /openapi.json with a document generated from the live
// snapshot.
func (h *Handler) openapi(c *gin.Context) error {
	d, err := h.apiDocs(h.opts.Engine.Current())
	if err != nil {
		return err
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", d.json)
	return nil
}

// docs answers GET /docs with a readable page rendered from the same document.
func (h *Handler) docs(c *gin.Context) error {
	d, err := h.apiDocs(h.opts.Engine.Current())
	if err != nil {
		return err
	}
	base := []byte(template.HTMLEscapeString(BaseURL(c.Request)))
	c.Data(http.StatusOK, "text/html; charset=utf-8", bytes.ReplaceAll(d.html, []byte(docsBaseURL), base))
	return nil
}

// BaseURL is the scheme and host r was sent to: https when it came over TLS
// or through a proxy that says so (X-Forwarded-Proto), as a browser's
// address bar shows it. The host passed the server's host check. The docs,
// the console's endpoint snippets and the A2A agent cards all name the
// server with it.
func BaseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// signIn sends a browser opening /docs without a valid sign-in to the
// console's sign-in page, which comes back here.
func signIn(c *gin.Context) {
	c.Redirect(http.StatusSeeOther, "/ui/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
	c.Abort()
}

// DocsBuilds is how many times h built its OpenAPI document and docs page:
// once per snapshot asked for, which the server's tests check.
func (h *Handler) DocsBuilds() int {
	h.docsCache.mu.Lock()
	defer h.docsCache.mu.Unlock()
	return h.docsCache.builds
}
