// Package ui serves Troupe's web console: server-rendered pages at / and
// under /ui (overview, agents and teams with a chat pane, sessions, traces,
// knowledge, config), their htmx fragments, the chat and reload event
// streams, sign-in, and the static assets under /static. Pages are rendered
// with the templ components of package view from view models built here.
//
// The console reads through the same data paths as the REST API (the
// engine snapshot, the store, the trace reader, the knowledge service and
// the run service) and classifies their errors with the API's table
// (api.Status), answering with its own pages. It is same-origin only: it
// signs users in with a cookie and refuses cross-origin writes.
package ui

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/a-h/templ"
	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/console/sse"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
	"github.com/troupehq/troupe/web"
)

// Engine is what the console needs from the engine.
type Engine interface {
	Current() *engine.Snapshot
	Reload(ctx context.Context) (*engine.ReloadResult, error)
	LastReload() *engine.ReloadResult
	Dirs() []string
	// Subscribe delivers each new snapshot (latest wins) until stop is called.
	Subscribe() (snapshots <-chan *engine.Snapshot, stop func())
}

// Store is what the console needs from the session store.
type Store interface {
	GetSession(ctx context.Context, id string, f store.Filter) (*store.Session, error)
	ListSessions(ctx context.Context, q store.SessionQuery) ([]store.Session, int, error)
	RenameSession(ctx context.Context, id, name string, f store.Filter) (*store.Session, error)
	DeleteSessions(ctx context.Context, ids []string, f store.Filter) ([]string, error)
	LatestRuns(ctx context.Context, sessionID string, f store.Filter, n int) ([]store.Run, int, error)
	RecentRuns(ctx context.Context, limit int, f store.Filter) ([]store.Run, error)
	RunActivity(ctx context.Context, from, to time.Time, buckets int, f store.Filter) ([]store.ActivityBucket, error)
	api.Fires
	api.FileRecords
	// Workflow runs: one run, a workflow's runs, a run's step checkpoints.
	GetRun(ctx context.Context, id string, f store.Filter) (*store.Run, error)
	ListComponentRuns(ctx context.Context, q store.RunQuery) ([]store.Run, int, error)
	api.WorkflowSteps
	// Spend and budget counters: the Spend and Budgets pages.
	Spend(ctx context.Context, from, to time.Time, f store.Filter) (*store.Spend, error)
	SpendTotal(ctx context.Context, from, to time.Time, f store.Filter) (store.SpendLine, error)
	api.BudgetCounters
}

// Knowledge is what the console needs from the knowledge service.
type Knowledge interface {
	api.Uploads
	Get(ctx context.Context, id string) (*knowledge.Document, error)
	List(ctx context.Context, q knowledge.DocumentQuery) ([]knowledge.Document, int, error)
	Counts(ctx context.Context) (map[string]map[string]int, error)
	Delete(ctx context.Context, id string) error
	Retry(ctx context.Context, id string) (*knowledge.Document, error)
	Sync(ctx context.Context, id string) (kb.SyncResult, error)
	SearchWith(ctx context.Context, r kb.SearchRequest) ([]knowledge.Hit, error)
}

// Runs is what the console needs from the run service.
type Runs interface {
	Start(ctx context.Context, p session.Params) (*session.Turn, error)
	Cancel(ctx context.Context, runID string, m session.Match) (bool, error)
	StopSessions(ctx context.Context, ids []string, userID string)
}

var (
	_ Engine    = (*engine.Engine)(nil)
	_ Store     = (*store.DB)(nil)
	_ Knowledge = (*kb.Service)(nil)
	_ Runs      = (*session.Service)(nil)
)

// Options configure a Handler.
type Options struct {
	Engine Engine
	Store  Store
	Runs   Runs
	// Knowledge serves the knowledge pages' documents and search; nil
	// shows knowledge as off.
	Knowledge Knowledge
	// KafkaLag reports, by knowledge base, the records of its Kafka topic
	// this replica has not indexed yet; nil shows no lag.
	KafkaLag func() map[string]int64
	// Memories serves the memories page; nil shows memories as off.
	Memories api.Memories
	// Traces serves the trace pages; nil shows tracing as off.
	Traces telemetry.Reader
	// Queue serves the jobs page (the job engine); nil leaves it out.
	Queue Queue
	// Triggers runs triggers now from the triggers page; nil leaves the
	// Run now buttons out.
	Triggers Triggers
	// Streams opens (and counts) the chat's and the reload events' streams.
	Streams *sse.Streams
	// Keys are the accepted API keys; none means the console runs open.
	Keys   *auth.Keyring
	Logger *slog.Logger
	// Closing is closed when the server begins to shut down, ending open
	// event streams that would otherwise hold the shutdown up.
	Closing <-chan struct{}
	// Body bounds a request's body, in size and in the time it may take to
	// arrive; Upload bounds an upload's, which may be larger and slower
	// (the handler bounds its size). Timeout bounds every request but the
	// chat, uploads and event streams. The server builds all three; nil
	// bounds nothing.
	Body, Upload, Timeout gin.HandlerFunc
	// Limits enforces the keys' and users' rate limits on chats; nil
	// limits nothing.
	Limits *ratelimit.Limiter
	// Learning applies decided learning proposals from the inbox (as the
	// API's does); nil leaves them decided but unapplied.
	Learning api.LearningDecider
	// Files keeps the files sent with runs (the chat's attachments) and
	// FileLimits bounds them (the store keeps their metadata); without
	// Files the chat takes no files.
	Files      files.Store
	FileLimits files.Limits
	// Version is shown in the pages' footer.
	Version string
	// Editor serves the spec editor's JSON routes under /ui/editor (see
	// editorapi.go) and names the files it edits; nil leaves the editor out.
	Editor Editor
}

// Editor is the spec editor as the console uses it: its JSON routes, and
// the name it gives a spec file (slash-separated, relative to the spec
// folder, prefixed by the folder's name when there are several), which the
// pages' Edit links open.
type Editor interface {
	Register(r gin.IRouter)
	EditorPath(file string) (path string, ok bool)
}

// Handler serves the console.
type Handler struct {
	opts Options
	log  *slog.Logger
	// asset maps a static file name to its cache-busting URL.
	asset func(name string) string
}

// New returns a Handler; Register mounts its routes.
func New(opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, m := range []*gin.HandlerFunc{&opts.Body, &opts.Upload, &opts.Timeout} {
		if *m == nil {
			*m = func(*gin.Context) {}
		}
	}
	versions := web.Versions()
	return &Handler{opts: opts, log: opts.Logger, asset: func(name string) string { return "/static/" + name + "?v=" + versions[name] }}
}

// Owns reports whether a path is in the console's part of the URL space
// rather than the API's. Routes need no such test, each group mounts its
// own; the server asks it only of a request no route matches, to answer
// with a page rather than JSON.
func Owns(p string) bool {
	return p == "/" || strings.HasPrefix(p, "/ui/") || p == "/ui" || strings.HasPrefix(p, "/static/") || p == "/favicon.ico"
}

// Register mounts the console's pages, fragments, streams and assets on r,
// which carries the server's own middleware (host check). Every route
// bounds its body (uploads with Options.Upload, the rest with
// Options.Body); pages need a signed-in key with their scope and refuse
// cross-origin writes; all but the chat, uploads and event streams are
// bounded by Options.Timeout.
func (h *Handler) Register(r gin.IRouter) {
	csrf := auth.CSRF(h.denyCrossOrigin)
	cookie := auth.Cookie(h.opts.Keys, signIn)
	bounded := r.Group("", h.opts.Body)
	static := http.StripPrefix("/static/", http.FileServerFS(web.Static()))
	bounded.GET("/static/*path", func(c *gin.Context) {
		if c.Query("v") != "" {
			c.Header("Cache-Control", "public, max-age=31536000, immutable")
		}
		static.ServeHTTP(c.Writer, c.Request)
	})
	// Browsers ask for /favicon.ico whatever the page links; send them to
	// the icon the layout links rather than a 404 on every first visit.
	bounded.GET("/favicon.ico", func(c *gin.Context) {
		c.Header("Cache-Control", "public, max-age=86400")
		c.Redirect(http.StatusMovedPermanently, h.asset("favicon.svg"))
	})

	ui := bounded.Group("", csrf)
	ui.GET("/ui/login", h.loginPage)
	ui.POST("/ui/login", h.login)
	ui.POST("/ui/logout", h.logout)

	pages := ui.Group("", cookie)
	uploads := r.Group("", h.opts.Upload, csrf, cookie)
	timed := pages.Group("", h.opts.Timeout)
	timed.GET("/", h.pageRequire(auth.ScopeAgentsRead), h.overviewPage)
	timed.GET("/ui", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/") })
	timed.GET("/ui/agents", h.pageRequire(auth.ScopeAgentsRead), h.targetsPage)
	timed.GET("/ui/agents/:id", h.pageRequire(auth.ScopeAgentsRead), h.targetPage("agent"))
	timed.GET("/ui/teams", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/ui/agents") })
	timed.GET("/ui/teams/:id", h.pageRequire(auth.ScopeAgentsRead), h.targetPage("team"))
	timed.GET("/ui/workflows", h.pageRequire(auth.ScopeAgentsRead), h.workflowsPage)
	timed.GET("/ui/workflows/:id", h.pageRequire(auth.ScopeAgentsRead), h.workflowPage)
	// Chats and workflow runs are runs: they count towards the caller's
	// limits (the other pages do not).
	run := []gin.HandlerFunc{h.pageRequire(auth.ScopeAgentsRun)}
	if h.opts.Limits != nil {
		run = append(run, h.opts.Limits.Middleware(func(c *gin.Context, err error) {
			c.Data(http.StatusTooManyRequests, "text/plain; charset=utf-8", []byte(err.Error()))
			c.Abort()
		}))
	}
	pages.POST("/ui/workflows/:id/run", append(slices.Clip(run), h.runWorkflow)...)
	timed.GET("/ui/workflows/:id/runs/:run_id", h.pageRequire(auth.ScopeSessionsRead), h.workflowRunPage)
	timed.POST("/ui/workflows/:id/runs/:run_id/continue", append(slices.Clip(run), h.continueFromConsole)...)
	pages.POST("/ui/agents/:id/chat", append(slices.Clip(run), h.chat("agent"))...)
	pages.POST("/ui/teams/:id/chat", append(slices.Clip(run), h.chat("team"))...)
	pages.POST("/ui/agents/:id/runs/:run_id/continue", append(slices.Clip(run), h.continueChat("agent"))...)
	pages.POST("/ui/teams/:id/runs/:run_id/continue", append(slices.Clip(run), h.continueChat("team"))...)
	timed.GET("/ui/agents/:id/runs/:run_id/held", h.pageRequire(auth.ScopeAgentsRun), h.heldRun("agent"))
	timed.GET("/ui/teams/:id/runs/:run_id/held", h.pageRequire(auth.ScopeAgentsRun), h.heldRun("team"))
	timed.POST("/ui/runs/:run_id/cancel", h.pageRequire(auth.ScopeAgentsRun), h.cancelFromConsole)
	timed.GET("/ui/runs/:run_id/trace", h.pageRequire(auth.ScopeSessionsRead), h.runTrace)

	timed.GET("/ui/sessions", h.pageRequire(auth.ScopeSessionsRead), h.sessionsPage)
	timed.GET("/ui/sessions/:id", h.pageRequire(auth.ScopeSessionsRead), h.sessionPage)
	timed.GET("/ui/sessions/:id/files/:file_id", h.pageRequire(auth.ScopeSessionsRead), h.sessionFile)
	timed.POST("/ui/sessions/:id/rename", h.pageRequire(auth.ScopeSessionsWrite), h.renameFromConsole)
	timed.POST("/ui/sessions/:id/delete", h.pageRequire(auth.ScopeSessionsWrite), h.deleteFromConsole)

	timed.GET("/ui/spend", h.pageRequire(auth.ScopeSessionsRead), h.spendPage)
	timed.GET("/ui/budgets", h.pageRequire(auth.ScopeSessionsRead), h.budgetsPage)
	timed.GET("/ui/traces", h.pageRequire(auth.ScopeSessionsRead), h.tracesPage)
	timed.GET("/ui/traces/:trace_id", h.pageRequire(auth.ScopeSessionsRead), h.tracePage)

	timed.GET("/ui/memories", h.pageRequire(auth.ScopeSessionsRead), h.memoriesPage)
	if h.opts.Memories != nil {
		timed.POST("/ui/memories/:id/edit", h.pageRequire(auth.ScopeSessionsWrite), h.editMemoryFromConsole)
		timed.POST("/ui/memories/:id/delete", h.pageRequire(auth.ScopeSessionsWrite), h.deleteMemoryFromConsole)
	}
	timed.GET("/ui/knowledge", h.pageRequire(auth.ScopeKnowledgeRead), h.knowledgePage)
	if h.opts.Knowledge != nil {
		uploads.POST("/ui/knowledge/upload", h.pageRequire(auth.ScopeKnowledgeWrite), h.uploadFromConsole)
		timed.GET("/ui/knowledge/docs/:id", h.pageRequire(auth.ScopeKnowledgeRead), h.docRow)
		timed.POST("/ui/knowledge/docs/:id/delete", h.pageRequire(auth.ScopeKnowledgeWrite), h.deleteDocFromConsole)
		timed.POST("/ui/knowledge/docs/:id/retry", h.pageRequire(auth.ScopeKnowledgeWrite), h.retryDocFromConsole)
		timed.POST("/ui/knowledge/search", h.pageRequire(auth.ScopeKnowledgeRead), h.searchFromConsole)
		timed.POST("/ui/knowledge/sync", h.pageRequire(auth.ScopeKnowledgeWrite), h.syncFromConsole)
	}

	if h.opts.Queue != nil {
		// Every user's jobs: operators' business, as on the API.
		timed.GET("/ui/queue", h.pageRequire(auth.ScopeAdmin), h.queuePage)
		timed.POST("/ui/queue/jobs/:job_id/requeue", h.pageRequire(auth.ScopeAdmin), h.requeueFromConsole)
	}
	timed.GET("/ui/triggers", h.pageRequire(auth.ScopeAgentsRead), h.triggersPage)
	if h.opts.Triggers != nil {
		// As on the API: starting runs nobody asked for is an operator's
		// decision.
		timed.POST("/ui/triggers/:name/fire", h.pageRequire(auth.ScopeAdmin), h.fireFromConsole)
	}
	// The inbox: what a key sees and may decide is the API's (api.Resolve).
	timed.GET("/ui/approvals", h.pageRequire(auth.ScopeApprovalsWrite), h.approvalsPage)
	timed.GET("/ui/approvals/count", h.pageRequire(auth.ScopeApprovalsWrite), h.approvalCount)
	timed.POST("/ui/approvals/:id/resolve", h.pageRequire(auth.ScopeApprovalsWrite), h.resolveFromConsole)
	timed.GET("/ui/config", h.pageRequire(auth.ScopeAgentsRead), h.configPage)
	timed.POST("/ui/config/reload", h.pageRequire(auth.ScopeAdmin), h.reloadFromConsole)
	if h.opts.Editor != nil {
		// The editor writes the spec folder: an administrator's page.
		timed.GET("/ui/editor", h.pageRequire(auth.ScopeAdmin), h.editorPage)
		timed.GET("/ui/editor/schema.json", h.pageRequire(auth.ScopeAdmin), h.editorSchemaJSON)
	}
	h.registerEditor(timed)
	pages.GET("/ui/events", h.pageRequire(auth.ScopeAgentsRead), h.events)
}

// denyCrossOrigin answers a cross-origin write to the console.
func (h *Handler) denyCrossOrigin(c *gin.Context, _ *auth.Error) {
	h.Problem(c, http.StatusForbidden, "Cross-origin request refused",
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
func (h *Handler) pageRequire(scope auth.Scope) gin.HandlerFunc {
	return auth.Require(scope, h.denyScope)
}

func (h *Handler) denyScope(c *gin.Context, err *auth.Error) {
	h.Problem(c, http.StatusForbidden, "Not allowed", "Your API key lacks the "+string(err.Scope)+" scope this page needs.", "Sign in with another key, or ask an administrator for the scope.")
}

func (h *Handler) loginPage(c *gin.Context) {
	if h.opts.Keys.Len() == 0 {
		c.Redirect(http.StatusSeeOther, "/")
		return
	}
	h.render(c, http.StatusOK, view.LoginPage(h.frame(c, "Sign in", ""), view.Login{Next: localPath(c.Query("next"))}))
}

func (h *Handler) login(c *gin.Context) {
	next := localPath(c.PostForm("next"))
	key := strings.TrimSpace(c.PostForm("key"))
	if _, ok := h.opts.Keys.Lookup(key); !ok || h.opts.Keys.Len() == 0 {
		h.render(c, http.StatusUnauthorized, view.LoginPage(h.frame(c, "Sign in", ""), view.Login{Error: "That key is not valid.", Next: next}))
		return
	}
	auth.SetCookie(c.Writer, key, c.Request.TLS != nil)
	c.Redirect(http.StatusSeeOther, next)
}

func (h *Handler) logout(c *gin.Context) {
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

func (h *Handler) frame(c *gin.Context, title, active string) view.Frame {
	f := view.Frame{Title: title, Active: active, AuthOn: h.opts.Keys.Len() > 0, Version: h.opts.Version, Assets: h.asset}
	p := auth.Of(c)
	// Not on pages shown before sign-in (no key while keys are on): their
	// badge's poll would be sent to sign in, reloading the page forever.
	signedIn := h.opts.Keys.Len() == 0 || p.Key() != nil
	if _, keeps := h.inbox(); keeps && signedIn && p.Has(auth.ScopeApprovalsWrite) {
		f.Approvals = true
	}
	if k := p.Key(); k != nil {
		f.KeyName = "key " + k.Name
		if k.UserID != "" {
			f.KeyName = k.UserID + " · key " + k.Name
		}
	}
	f.Hide = map[string]bool{}
	for _, n := range navScopes {
		if !signedIn || !p.Has(n.scope) {
			f.Hide[n.id] = true
		}
	}
	if h.opts.Queue == nil {
		f.Hide["queue"] = true // no job engine: no jobs page
	}
	return f
}

// navScopes are the scopes the pages in the navigation need: the same as
// their routes' pageRequire in Register, so the navigation shows only the
// pages the key may open (TestNavigationShowsOnlyPagesTheKeyMayOpen).
var navScopes = []struct {
	id    string
	scope auth.Scope
}{
	{"overview", auth.ScopeAgentsRead},
	{"agents", auth.ScopeAgentsRead},
	{"workflows", auth.ScopeAgentsRead},
	{"sessions", auth.ScopeSessionsRead},
	{"traces", auth.ScopeSessionsRead},
	{"spend", auth.ScopeSessionsRead},
	{"budgets", auth.ScopeSessionsRead},
	{"knowledge", auth.ScopeKnowledgeRead},
	{"memories", auth.ScopeSessionsRead},
	{"queue", auth.ScopeAdmin},
	{"triggers", auth.ScopeAgentsRead},
	{"config", auth.ScopeAgentsRead},
}

// render writes a component as the response. Pages are rendered into a
// buffer first so a failure mid-page becomes an error page, not half a page.
func (h *Handler) render(c *gin.Context, status int, comp templ.Component) {
	var b bytes.Buffer
	if err := comp.Render(c.Request.Context(), &b); err != nil {
		h.log.Error("rendering page", "path", c.Request.URL.Path, "err", err)
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

// Problem answers with a friendly error page for browsers navigating or
// posting forms, and with a short text for htmx and script requests, which
// show it inline.
func (h *Handler) Problem(c *gin.Context, status int, title, msg, hint string) {
	if c.GetHeader("HX-Request") != "" || !strings.Contains(c.GetHeader("Accept"), "text/html") {
		c.Header("HX-Reswap", "none")
		c.Data(status, "text/plain; charset=utf-8", []byte(title+": "+msg))
		c.Abort()
		return
	}
	h.render(c, status, view.ProblemPage(h.frame(c, title, ""), view.Problem{Title: title, Message: msg, Hint: hint}))
	c.Abort()
}

// fail answers an error from the shared data paths with a problem
// page, classified by the API's table (api.Status); what names the thing
// being loaded or changed ("the session").
func (h *Handler) fail(c *gin.Context, what string, err error) {
	status, msg, known := api.Status(err)
	var refusal *session.Error
	switch {
	case errors.As(err, &refusal):
		// The run service's refusal says what to change.
		h.Problem(c, status, http.StatusText(status), msg, "")
	case errors.Is(err, store.ErrNotFound), errors.Is(err, knowledge.ErrNotFound):
		noun := strings.TrimPrefix(what, "the ")
		h.Problem(c, http.StatusNotFound, strings.ToUpper(noun[:1])+noun[1:]+" not found",
			"There is no such "+noun+" you can see.", "It may have been deleted.")
	case errors.Is(err, telemetry.ErrUnavailable):
		h.Problem(c, http.StatusServiceUnavailable, "Trace store unavailable", "The trace store cannot be reached right now.", "Troupe keeps retrying; spans recorded meanwhile are dropped and counted.")
	case errors.Is(err, context.DeadlineExceeded):
		h.Problem(c, http.StatusServiceUnavailable, "Too slow", what+" took too long to load.", "Try again; if it keeps happening, check the database.")
	case known:
		// Bad requests and the knowledge service's own refusals.
		h.Problem(c, status, http.StatusText(status), msg, "")
	default:
		h.log.Error("console request failed", "path", c.Request.URL.Path, "what", what, "err", err)
		h.Problem(c, http.StatusInternalServerError, "Something went wrong", "Loading "+what+" failed.", "The server log has the details.")
	}
}

// events streams a "reload" event each time a new snapshot is published, so
// open pages refresh the regions that depend on the spec folder.
func (h *Handler) events(c *gin.Context) {
	snaps, stop := h.opts.Engine.Subscribe()
	defer stop()
	w, closed := h.opts.Streams.Open(c.Writer)
	defer closed()
	_ = w.Event("ready", map[string]uint64{"generation": h.opts.Engine.Current().Generation()})
	ping := time.NewTicker(sse.HeartbeatInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.Request.Context().Done():
			return
		case <-h.opts.Closing:
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

// NotFound answers a console path no route serves.
func (h *Handler) NotFound(c *gin.Context) {
	h.Problem(c, http.StatusNotFound, "Page not found", "There is no console page at "+c.Request.URL.Path+".", "Use the navigation above.")
}
