package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"golang.org/x/net/netutil"

	"github.com/troupehq/troupe/console/a2a"
	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/editor"
	"github.com/troupehq/troupe/console/mcpserver"
	"github.com/troupehq/troupe/console/openai"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/console/sse"
	"github.com/troupehq/troupe/console/ui"
	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/telemetry"
)

// Options configure a Server.
type Options struct {
	Engine Engine
	Store  Store
	// Knowledge serves /knowledge routes; nil leaves them out.
	Knowledge Knowledge
	// KafkaLag reports each knowledge base's Kafka lag for the knowledge
	// page; nil shows no event sources.
	KafkaLag func() map[string]int64
	// Memories serves the memory routes; nil leaves them out.
	Memories api.Memories
	// Runs is the run service every run route starts, cancels and waits on
	// (required). Serve waits for its runs to end before it returns.
	Runs *session.Service
	// Background queues background=true runs (the job engine's run queue);
	// nil refuses them.
	Background api.Background
	// Queue shows the job engine's queues and jobs to operators (/queue
	// routes, the console's jobs page); nil leaves them out.
	Queue Queue
	// Triggers answers webhooks at POST /hooks/{path}; nil leaves the
	// route out.
	Triggers Triggers
	// Traces answers /traces; nil leaves the routes out.
	Traces telemetry.Reader
	// Metrics observes runs for /metrics/prometheus; nil leaves it out.
	Metrics *telemetry.Metrics
	Logger  *slog.Logger
	// Keys are the accepted API keys; none means the server runs open, which
	// cmd/troupe allows only on loopback addresses.
	Keys *auth.Keyring
	// CORSOrigins are the browser origins allowed to call the API. Entries may
	// end in ":*" to allow any port. Default: localhost and 127.0.0.1, any port.
	CORSOrigins []string
	// AllowedHosts are the names, besides the addresses the server listens
	// on, that requests may carry in Host (DNS rebinding defence; see
	// hostPolicy): "example.com" (any port), "example.com:8443",
	// "*.example.com" (its subdomains). "*" turns the check off, and is
	// honoured only with Keys: without keys the check is all that keeps other
	// sites' pages away from the API.
	AllowedHosts []string
	// MaxBodyBytes bounds request bodies (default 10 MiB).
	MaxBodyBytes int64
	// HeaderTimeout bounds reading a request's headers (default 10s).
	HeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body, from the end of its
	// headers, on every route but uploads (default 30s): a client trickling
	// a body must not hold a connection, a file descriptor and a handler.
	BodyTimeout time.Duration
	// UploadTimeout bounds reading an upload's body (knowledge documents;
	// default 10m).
	UploadTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection may wait for its
	// next request (default 60s).
	IdleTimeout time.Duration
	// MaxConnections caps the connections served at once (default 1024);
	// further ones wait to be accepted until one closes. Header, body and
	// idle timeouts bound how long a slow client holds one.
	MaxConnections int
	// RequestTimeout bounds every request except runs, whose limits come from
	// their specs (default 30s).
	RequestTimeout time.Duration
	// DrainDelay is how long the server keeps accepting requests after
	// shutdown begins, with its readiness probe already failing, so that a
	// load balancer polling the probe stops sending it work before its
	// listener closes (0: close at once). Set it a little above the load
	// balancer's health check interval.
	DrainDelay time.Duration
	// ShutdownTimeout is how long in-flight requests may finish after shutdown
	// begins before their runs are cancelled (default 30s).
	ShutdownTimeout time.Duration
	// DBID identifies the database in AgentOS responses (default "troupe-db").
	DBID    string
	Version string
	// ReplicaID names this process among the replicas serving one database,
	// shown by GET /config (default: host name and process id).
	ReplicaID string
	// Limits enforces the API keys' and users' rate limits on the API, the
	// OpenAI surface and the console's chats; nil limits nothing.
	Limits *ratelimit.Limiter
	// Learning applies decided learning proposals (engine/learning); nil
	// leaves them decided but unapplied.
	Learning api.LearningDecider
	// Erasers erase a user's data besides their sessions on DELETE
	// /users/{user_id}: learnings, memories (one per kind of data).
	Erasers []api.UserEraser
	// Files keeps the files sent with runs and FileLimits bounds them (the
	// store keeps their metadata); without Files, runs take no files.
	Files      files.Store
	FileLimits files.Limits
	// DisableMCP leaves out the MCP server at /mcp (troupe serve
	// --mcp=false); it is served by default.
	DisableMCP bool
	// Spans records a span per write of the spec editor (the telemetry
	// recorder); nil records none.
	Spans editor.Spans
}

// DefaultReplicaID names a replica by its host name (a container's id under
// Docker) and process id, which tell apart two processes on one host too.
func DefaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// Server is the HTTP surface of Troupe.
type Server struct {
	opts   Options
	log    *slog.Logger
	router *gin.Engine
	start  time.Time
	// closing is closed when shutdown begins, ending open event streams that
	// would otherwise hold the shutdown until its timeout.
	closing   chan struct{}
	closeOnce sync.Once
	// streams opens the event streams of runs and console pages, counted
	// in Metrics.
	streams *sse.Streams
	// api, openai and ui serve the route groups the server mounts.
	api    *api.Handler
	openai *openai.Handler
	a2a    *a2a.Handler
	ui     *ui.Handler
	// mcp serves /mcp; nil when Options.DisableMCP.
	mcp *mcpserver.Server
	// hosts is the Host check of the listener being served (set by Serve);
	// nil refuses every request.
	hosts atomic.Pointer[hostPolicy]
}

// DefaultCORSOrigins allow local development front ends on any port.
var DefaultCORSOrigins = []string{"http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"}

// New builds a server.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 10 << 20
	}
	if opts.HeaderTimeout == 0 {
		opts.HeaderTimeout = 10 * time.Second
	}
	if opts.BodyTimeout == 0 {
		opts.BodyTimeout = 30 * time.Second
	}
	if opts.UploadTimeout == 0 {
		opts.UploadTimeout = 10 * time.Minute
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	if opts.MaxConnections == 0 {
		opts.MaxConnections = 1024
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.DBID == "" {
		opts.DBID = "troupe-db"
	}
	if opts.ReplicaID == "" {
		opts.ReplicaID = DefaultReplicaID()
	}
	if len(opts.CORSOrigins) == 0 {
		opts.CORSOrigins = DefaultCORSOrigins
	}
	s := &Server{opts: opts, log: opts.Logger, start: time.Now().UTC(), closing: make(chan struct{})}
	if opts.Metrics != nil {
		// Only a non-nil *Metrics: a nil one in the interface would count.
		s.streams = sse.NewStreams(opts.Metrics)
	}
	// Every route bounds its body; uploads get longer to send theirs, and
	// bound their size themselves.
	body, upload := s.limitBody(opts.BodyTimeout, opts.MaxBodyBytes), s.limitBody(opts.UploadTimeout, 0)
	var prom http.Handler
	if opts.Metrics != nil {
		prom = opts.Metrics.Handler()
		if opts.Limits != nil {
			opts.Metrics.MustRegister(opts.Limits.Collector())
		}
	}
	documented := append(openai.Routes(), a2a.Routes()...)
	if opts.Triggers != nil {
		documented = append(documented, hookRoutes()...)
	}
	if !opts.DisableMCP {
		documented = append(documented, mcpserver.Routes()...)
	}
	// The spec editor: the API serves it under /config, the console under
	// /ui/editor, with the same handlers.
	ed := editor.New(editor.Options{Engine: opts.Engine, Audit: opts.Store, Spans: opts.Spans, Logger: opts.Logger})
	s.api = api.New(api.Options{Editor: ed,
		Engine: opts.Engine, Store: opts.Store, Runs: opts.Runs, Background: opts.Background, Queue: opts.Queue, Triggers: triggersOf(opts.Triggers), Knowledge: opts.Knowledge, Memories: opts.Memories, Traces: opts.Traces, Prometheus: prom,
		Streams: s.streams, Keys: opts.Keys, Logger: opts.Logger, Started: s.start, Closing: s.closing,
		Documented: documented, Body: body, Upload: upload, Timeout: s.timeout, DBID: opts.DBID, Version: opts.Version, ReplicaID: opts.ReplicaID, Limits: opts.Limits,
		Learning: opts.Learning, Erasers: opts.Erasers, Files: opts.Files, FileLimits: opts.FileLimits,
	})
	s.openai = openai.New(openai.Options{Engine: opts.Engine, Runs: opts.Runs, Streams: s.streams, Keys: opts.Keys, Deny: s.api.Deny,
		Logger: opts.Logger, Body: body, Timeout: s.timeout, Limits: opts.Limits})
	s.a2a = a2a.New(a2a.Options{Engine: opts.Engine, Runs: opts.Runs, Store: opts.Store, Keys: opts.Keys, Deny: s.api.Deny,
		Logger: opts.Logger, Body: body, Timeout: s.timeout, Limits: opts.Limits, Version: opts.Version})
	s.ui = ui.New(ui.Options{Editor: ed, Engine: opts.Engine, Store: opts.Store, Runs: opts.Runs, Knowledge: opts.Knowledge, KafkaLag: opts.KafkaLag, Memories: opts.Memories, Traces: opts.Traces, Queue: opts.Queue, Triggers: triggersOf(opts.Triggers), Streams: s.streams,
		Keys: opts.Keys, Logger: opts.Logger, Closing: s.closing, Body: body, Upload: upload, Timeout: s.timeout, Version: opts.Version, Limits: opts.Limits, Learning: opts.Learning,
		Files: opts.Files, FileLimits: opts.FileLimits})
	if !opts.DisableMCP {
		// Operator tools call the API's routes in process: the same
		// handlers, scopes and user isolation as over HTTP, past the host
		// check and CORS the /mcp request itself went through.
		gin.SetMode(gin.ReleaseMode)
		internal := gin.New()
		internal.Use(s.recoverPanics)
		s.api.Register(internal)
		s.mcp = mcpserver.New(mcpserver.Options{Engine: opts.Engine, Runs: opts.Runs, Store: opts.Store, API: internal,
			Keys: opts.Keys, Limits: opts.Limits, Logger: opts.Logger.With("component", "mcp"), Version: opts.Version})
	}
	s.router = s.routes()
	return s
}

// routes mounts the route groups, each with the server's middleware for
// what it serves: the API and the OpenAI surface answer in JSON and allow
// cross-origin callers (CORS); the console answers with pages and is
// same-origin only. Within its group each handler adds its own body limits,
// authentication and timeouts per route.
func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	_ = r.SetTrustedProxies(nil)
	r.Use(s.recoverPanics, s.logRequests)

	apiChain := []gin.HandlerFunc{s.checkHost(s.misdirectedAPI), s.cors()}
	uiChain := []gin.HandlerFunc{s.checkHost(s.misdirectedPage)}
	apis := r.Group("", apiChain...)
	s.api.Register(apis)
	s.openai.Register(apis)
	s.a2a.Register(apis)
	s.ui.Register(r.Group("", uiChain...))
	if s.mcp != nil {
		// MCP clients authenticate like API clients; listing tools needs
		// agents:read, running one agents:run (checked per call).
		chain := []gin.HandlerFunc{s.checkHost(s.misdirectedAPI), s.limitBody(s.opts.BodyTimeout, s.opts.MaxBodyBytes), auth.Bearer(s.opts.Keys, s.api.Deny)}
		if s.opts.Limits != nil {
			chain = append(chain, s.opts.Limits.Middleware(s.api.Fail))
		}
		chain = append(chain, s.api.Require(auth.ScopeAgentsRead), s.mcp.Handle)
		// The streamable HTTP transport's methods: messages, the event
		// stream, and the end of a session.
		for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
			r.Handle(m, "/mcp", chain...)
		}
	}
	if s.opts.Triggers != nil {
		r.POST("/hooks/*path", s.checkHost(s.misdirectedAPI), s.limitBody(s.opts.BodyTimeout, s.opts.MaxBodyBytes), s.timeout, s.hook)
	}

	// A request no route matches belongs to no group, and gin has no
	// fallback per group (nor may a catch-all share a prefix with routes):
	// the path tells which group's middleware and answer it gets.
	body := s.limitBody(s.opts.BodyTimeout, s.opts.MaxBodyBytes)
	fallback := func(onAPI, onUI gin.HandlerFunc) gin.HandlerFunc {
		apiRest := append(slices.Clip(apiChain), body, onAPI)
		uiRest := append(slices.Clip(uiChain), body, onUI)
		return func(c *gin.Context) {
			chain := apiRest
			if ui.Owns(c.Request.URL.Path) {
				chain = uiRest
			}
			for _, h := range chain {
				if h(c); c.IsAborted() {
					return
				}
			}
		}
	}
	noMethod := func(c *gin.Context) {
		s.api.Fail(c, &api.Error{Status: http.StatusMethodNotAllowed, Msg: "method " + c.Request.Method + " is not allowed on " + c.Request.URL.Path})
	}
	r.NoRoute(fallback(func(c *gin.Context) {
		s.api.Fail(c, &api.Error{Status: http.StatusNotFound, Msg: "no such route: " + c.Request.Method + " " + c.Request.URL.Path})
	}, s.ui.NotFound))
	r.NoMethod(fallback(noMethod, noMethod))
	return r
}

// cors answers the API's preflight requests before authentication runs and
// puts CORS headers on its answers, for the origins Options.CORSOrigins
// allows.
func (s *Server) cors() gin.HandlerFunc {
	corsHandler := cors.New(cors.Config{
		AllowOriginFunc:  s.originAllowed,
		AllowMethods:     []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"},
		AllowHeaders:     []string{"Authorization", "Content-Type", "X-API-Key", "X-Session-Id", "Traceparent"},
		ExposeHeaders:    []string{"X-Run-Id", "X-Session-Id", "X-Trace-Id", "Traceparent"},
		AllowCredentials: true,
		MaxAge:           10 * time.Minute,
	})
	return func(c *gin.Context) {
		// The CORS handler takes an Origin equal to the Host for this
		// server's own and lets it through. That holds only for a Host the
		// host check knows as ours: with the check turned off ("*"), a
		// rebound name is as foreign as any other origin.
		if o := c.GetHeader("Origin"); o != "" && sameHost(o, c.Request.Host) && !s.hosts.Load().own(c.Request.Host) && !s.originAllowed(o) {
			s.api.Fail(c, &api.Error{Status: http.StatusForbidden, Msg: "origin " + quoteHost(o) + " is not allowed: add it to --cors-origins (env TROUPE_CORS_ORIGINS) if it is yours"})
			return
		}
		corsHandler(c)
	}
}

// originAllowed matches an Origin against the configured list; entries ending
// in ":*" allow any port of that scheme and host.
func (s *Server) originAllowed(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	hostOnly := u.Scheme + "://" + strings.TrimSuffix(u.Host, ":"+u.Port())
	for _, o := range s.opts.CORSOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
		if prefix, ok := strings.CutSuffix(o, ":*"); ok && strings.EqualFold(prefix, hostOnly) {
			return true
		}
	}
	return false
}

// sameHost reports whether an Origin names host (scheme aside), as the CORS
// handler's same-origin shortcut decides.
func sameHost(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, host)
}

func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic serving request", "method", c.Request.Method, "path", c.Request.URL.Path, "panic", p)
			if !c.Writer.Written() {
				s.api.Fail(c, &api.Error{Status: http.StatusInternalServerError, Msg: "internal error: the server recovered from a bug; see its log"})
			}
		}
	}()
	c.Next()
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	level := slog.LevelDebug
	if c.Writer.Status() >= 500 {
		level = slog.LevelError
	}
	s.log.Log(c.Request.Context(), level, "request", "method", c.Request.Method, "path", c.FullPath(),
		"status", c.Writer.Status(), "duration", time.Since(start), "bytes", c.Writer.Size())
}

// limitBody bounds the size of a request's body to max bytes (0: the
// handler bounds it, as uploads do) and the time reading it may take to
// wait. http.Server's ReadTimeout would do for the time, but for every route
// alike; a deadline set here is per route group. Once the body has been read
// to its end, net/http lifts the deadline itself (it then reads only to
// notice the client going away), so a run may stream its answer for longer.
func (s *Server) limitBody(wait time.Duration, max int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Body == nil || c.Request.Body == http.NoBody {
			// No body: nothing to bound. net/http is already watching such
			// a connection for the client going away, and a deadline would
			// end that watch by cancelling the request: event streams would
			// be cut.
			return
		}
		if max > 0 {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, max)
		}
		if err := http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(wait)); err != nil {
			s.log.Warn("cannot bound the time to read a request body", "path", c.FullPath(), "err", err)
		}
	}
}

// timeout bounds requests that are not runs.
func (s *Server) timeout(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// Serve answers requests on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting, lets in-flight requests (streams included)
// finish for up to ShutdownTimeout, then cancels the runs still going so they
// are saved as cancelled.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.hosts.Store(newHostPolicy(ln.Addr(), s.opts.AllowedHosts, s.opts.Keys.Len() == 0))
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	// The cap counts connections, not requests: a slow client holds its
	// slot only as long as the header, body and idle timeouts let it.
	ln = netutil.LimitListener(ln, s.opts.MaxConnections)
	// No ReadTimeout (limitBody sets one per route group) and no WriteTimeout:
	// runs stream their answers for as long as their specs allow.
	srv := &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: s.opts.HeaderTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if s.mcp != nil {
		// The MCP server follows reloads until shutdown begins, then
		// closes its sessions' event streams.
		mcpDone := make(chan struct{})
		go func() { defer close(mcpDone); _ = s.mcp.Run(ctx) }()
		defer func() { <-mcpDone }()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	s.closeOnce.Do(func() { close(s.closing) })
	if s.opts.DrainDelay > 0 {
		s.log.Info("shutting down: readiness fails; still accepting requests while load balancers notice", "delay", s.opts.DrainDelay)
		time.Sleep(s.opts.DrainDelay)
	}
	s.log.Info("shutting down: draining in-flight requests", "runs", s.opts.Runs.Active(), "timeout", s.opts.ShutdownTimeout)
	drain, cancelDrain := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancelDrain()
	err := srv.Shutdown(drain)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("shutdown timeout: cancelling the runs still in flight", "runs", s.opts.Runs.Active())
		cancelBase()
		// Give cancelled runs a moment to save their final state.
		finish, cancelFinish := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancelFinish()
		err = srv.Shutdown(finish)
	}
	// The runs of the requests above have ended or been cancelled; wait
	// for their final saves (Wait returns at once when there are none).
	_ = s.opts.Runs.Wait(context.WithoutCancel(ctx))
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("shutting down HTTP server: %w", err)
	}
	return nil
}

// The spec editor serves both the API's and the console's routes.
var (
	_ api.Editor = (*editor.Service)(nil)
	_ ui.Editor  = (*editor.Service)(nil)
)
