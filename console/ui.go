package console

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/a-h/templ"
	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/sse"
	"github.com/troupehq/troupe/console/view"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
	"github.com/troupehq/troupe/web"
)

// The web console lives at / and under /ui; its assets under /static. It is
// served by the same handlers' data paths as the REST API (the engine
// snapshot, the store, the trace reader and the knowledge service), rendered
// with the templ components of package view.

// isConsolePath reports whether a path belongs to the console rather than the
// API: those skip CORS, since the console is only ever same-origin.
func isConsolePath(p string) bool {
	return p == "/" || strings.HasPrefix(p, "/ui/") || p == "/ui" || strings.HasPrefix(p, "/static/")
}

func (s *Server) consoleRoutes(r *gin.Engine) {
	versions := web.Versions()
	s.asset = func(name string) string { return "/static/" + name + "?v=" + versions[name] }
	static := http.StripPrefix("/static/", http.FileServerFS(web.Static()))
	r.GET("/static/*path", func(c *gin.Context) {
		if c.Query("v") != "" {
			c.Header("Cache-Control", "public, max-age=31536000, immutable")
		}
		static.ServeHTTP(c.Writer, c.Request)
	})

	ui := r.Group("", auth.CSRF(s.denyCrossOrigin))
	ui.GET("/ui/login", s.loginPage)
	ui.POST("/ui/login", s.login)
	ui.POST("/ui/logout", s.logout)

	pages := ui.Group("", auth.Cookie(s.opts.Keys, signIn))
	timed := pages.Group("", s.timeout)
	timed.GET("/", s.pageRequire(auth.ScopeAgentsRead), s.overviewPage)
	timed.GET("/ui", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/") })
	timed.GET("/ui/agents", s.pageRequire(auth.ScopeAgentsRead), s.targetsPage)
	timed.GET("/ui/agents/:id", s.pageRequire(auth.ScopeAgentsRead), s.targetPage("agent"))
	timed.GET("/ui/teams", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/ui/agents") })
	timed.GET("/ui/teams/:id", s.pageRequire(auth.ScopeAgentsRead), s.targetPage("team"))
	pages.POST("/ui/agents/:id/chat", s.pageRequire(auth.ScopeAgentsRun), s.chat("agent"))
	pages.POST("/ui/teams/:id/chat", s.pageRequire(auth.ScopeAgentsRun), s.chat("team"))
	timed.POST("/ui/runs/:run_id/cancel", s.pageRequire(auth.ScopeAgentsRun), s.cancelFromConsole)
	timed.GET("/ui/runs/:run_id/trace", s.pageRequire(auth.ScopeSessionsRead), s.runTrace)

	timed.GET("/ui/sessions", s.pageRequire(auth.ScopeSessionsRead), s.sessionsPage)
	timed.GET("/ui/sessions/:id", s.pageRequire(auth.ScopeSessionsRead), s.sessionPage)
	timed.POST("/ui/sessions/:id/rename", s.pageRequire(auth.ScopeSessionsWrite), s.renameFromConsole)
	timed.POST("/ui/sessions/:id/delete", s.pageRequire(auth.ScopeSessionsWrite), s.deleteFromConsole)

	timed.GET("/ui/traces", s.pageRequire(auth.ScopeSessionsRead), s.tracesPage)
	timed.GET("/ui/traces/:trace_id", s.pageRequire(auth.ScopeSessionsRead), s.tracePage)

	timed.GET("/ui/knowledge", s.pageRequire(auth.ScopeKnowledgeRead), s.knowledgePage)
	if s.opts.Knowledge != nil {
		pages.POST("/ui/knowledge/upload", s.pageRequire(auth.ScopeKnowledgeWrite), s.uploadFromConsole)
		timed.GET("/ui/knowledge/docs/:id", s.pageRequire(auth.ScopeKnowledgeRead), s.docRow)
		timed.POST("/ui/knowledge/docs/:id/delete", s.pageRequire(auth.ScopeKnowledgeWrite), s.deleteDocFromConsole)
		timed.POST("/ui/knowledge/docs/:id/retry", s.pageRequire(auth.ScopeKnowledgeWrite), s.retryDocFromConsole)
		timed.POST("/ui/knowledge/search", s.pageRequire(auth.ScopeKnowledgeRead), s.searchFromConsole)
	}

	timed.GET("/ui/config", s.pageRequire(auth.ScopeAgentsRead), s.configPage)
	timed.POST("/ui/config/reload", s.pageRequire(auth.ScopeAdmin), s.reloadFromConsole)
	pages.GET("/ui/events", s.pageRequire(auth.ScopeAgentsRead), s.events)
}

// denyCrossOrigin answers a cross-origin write to the console.
func (s *Server) denyCrossOrigin(c *gin.Context, _ *auth.Error) {
	s.problem(c, http.StatusForbidden, "Cross-origin request refused",
		"The console only accepts changes made from its own pages.", "If you followed a link or submitted a form from another site, open the console directly instead.")
}

// signIn sends a console user without a valid key to the sign-in page:
// pages redirect, htmx requests are told where to go.
func signIn(c *gin.Context) {
	if c.Request.Method == http.MethodGet && c.GetHeader("HX-Request") == "" && c.FullPath() != "/ui/events" {
		c.Redirect(http.StatusSeeOther, "/ui/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
		c.Abort()
		return
	}
	c.Header("HX-Redirect", "/ui/login")
	c.AbortWithStatus(http.StatusUnauthorized)
}

// pageRequire refuses console users whose key lacks scope, with a page.
func (s *Server) pageRequire(scope auth.Scope) gin.HandlerFunc {
	return auth.Require(scope, s.denyScope)
}

func (s *Server) denyScope(c *gin.Context, err *auth.Error) {
	s.problem(c, http.StatusForbidden, "Not allowed", "Your API key lacks the "+string(err.Scope)+" scope this page needs.", "Sign in with another key, or ask an administrator for the scope.")
}

func (s *Server) loginPage(c *gin.Context) {
	if s.opts.Keys.Len() == 0 {
		c.Redirect(http.StatusSeeOther, "/")
		return
	}
	s.render(c, http.StatusOK, view.LoginPage(s.frame(c, "Sign in", ""), view.Login{Next: localPath(c.Query("next"))}))
}

func (s *Server) login(c *gin.Context) {
	next := localPath(c.PostForm("next"))
	key := strings.TrimSpace(c.PostForm("key"))
	if _, ok := s.opts.Keys.Lookup(key); !ok || s.opts.Keys.Len() == 0 {
		s.render(c, http.StatusUnauthorized, view.LoginPage(s.frame(c, "Sign in", ""), view.Login{Error: "That key is not valid.", Next: next}))
		return
	}
	auth.SetCookie(c.Writer, key, c.Request.TLS != nil)
	c.Redirect(http.StatusSeeOther, next)
}

func (s *Server) logout(c *gin.Context) {
	auth.ClearCookie(c.Writer)
	c.Redirect(http.StatusSeeOther, "/ui/login")
}

// localPath keeps redirects after sign-in on this site: anything but a clean
// relative path becomes /.
func localPath(p string) string {
	if !isLocalPath(p) {
		return "/"
	}
	return p
}

// isLocalPath accepts only a path that every browser resolves against this
// site. Browsers strip tabs and newlines from URLs and read a backslash as a
// slash, so "/\t/evil.com" and "/\\evil.com" are the scheme-relative
// "//evil.com"; the same characters percent-encoded may be decoded by a
// proxy or a later redirect. So the path, raw and decoded, must start with a
// single slash and hold no backslash, whitespace or control character.
func isLocalPath(p string) bool {
	decoded, err := url.PathUnescape(p)
	if err != nil || !utf8.ValidString(decoded) {
		return false
	}
	for _, s := range []string{p, decoded} {
		if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") ||
			strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return false
		}
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil && u.Opaque == ""
}

func (s *Server) frame(c *gin.Context, title, active string) view.Frame {
	f := view.Frame{Title: title, Active: active, AuthOn: s.opts.Keys.Len() > 0, Version: s.opts.Version, Assets: s.asset}
	if p := auth.Of(c); p.Key() != nil {
		f.KeyName = p.Key().Name
	}
	return f
}

// render writes a component as the response. Pages are rendered into a
// buffer first so a failure mid-page becomes an error page, not half a page.
func (s *Server) render(c *gin.Context, status int, comp templ.Component) {
	var b bytes.Buffer
	if err := comp.Render(c.Request.Context(), &b); err != nil {
		s.log.Error("rendering page", "path", c.Request.URL.Path, "err", err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error rendering this page; see the server log"))
		c.Abort()
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("X-Frame-Options", "DENY")
	c.Header("Referrer-Policy", "same-origin")
	c.Header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	c.Data(status, "text/html; charset=utf-8", b.Bytes())
}

// problem answers with a friendly error page for browsers navigating or
// posting forms, and with a short text for htmx and script requests, which
// show it inline.
func (s *Server) problem(c *gin.Context, status int, title, msg, hint string) {
	if c.GetHeader("HX-Request") != "" || !strings.Contains(c.GetHeader("Accept"), "text/html") {
		c.Header("HX-Reswap", "none")
		c.Data(status, "text/plain; charset=utf-8", []byte(title+": "+msg))
		c.Abort()
		return
	}
	s.render(c, status, view.ProblemPage(s.frame(c, title, ""), view.Problem{Title: title, Message: msg, Hint: hint}))
	c.Abort()
}

// consoleError answers an error from the shared data paths with a problem
// page, classified by the API's table (api.Status); what names the thing
// being loaded or changed ("the session").
func (s *Server) consoleError(c *gin.Context, what string, err error) {
	status, msg, known := api.Status(err)
	var refusal *session.Error
	switch {
	case errors.As(err, &refusal):
		// The run service's refusal says what to change.
		s.problem(c, status, http.StatusText(status), msg, "")
	case errors.Is(err, store.ErrNotFound), errors.Is(err, kb.ErrNotFound):
		noun := strings.TrimPrefix(what, "the ")
		s.problem(c, http.StatusNotFound, strings.ToUpper(noun[:1])+noun[1:]+" not found",
			"There is no such "+noun+" you can see.", "It may have been deleted.")
	case errors.Is(err, telemetry.ErrUnavailable):
		s.problem(c, http.StatusServiceUnavailable, "Trace store unavailable", "The trace store cannot be reached right now.", "Troupe keeps retrying; spans recorded meanwhile are dropped and counted.")
	case errors.Is(err, context.DeadlineExceeded):
		s.problem(c, http.StatusServiceUnavailable, "Too slow", what+" took too long to load.", "Try again; if it keeps happening, check the database.")
	case known:
		// Bad requests and the knowledge service's own refusals.
		s.problem(c, status, http.StatusText(status), msg, "")
	default:
		s.log.Error("console request failed", "path", c.Request.URL.Path, "what", what, "err", err)
		s.problem(c, http.StatusInternalServerError, "Something went wrong", "Loading "+what+" failed.", "The server log has the details.")
	}
}

// events streams a "reload" event each time a new snapshot is published, so
// open pages refresh the regions that depend on the spec folder.
func (s *Server) events(c *gin.Context) {
	snaps, stop := s.opts.Engine.Subscribe()
	defer stop()
	w, closed := s.streams.Open(c.Writer)
	defer closed()
	_ = w.Event("ready", map[string]uint64{"generation": s.opts.Engine.Current().Generation()})
	ping := time.NewTicker(sse.HeartbeatInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.Request.Context().Done():
			return
		case <-s.closing:
			return
		case snap := <-snaps:
			if w.Event("reload", map[string]uint64{"generation": snap.Generation()}) != nil {
				return
			}
		case <-ping.C:
			if w.Heartbeat() != nil {
				return
			}
		}
	}
}
