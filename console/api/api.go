// Package api serves Troupe's AgentOS-compatible REST API: agents and teams
// and their runs (JSON or server-sent events), sessions, knowledge, traces,
// metrics, configuration and reload, health, and the OpenAPI document and
// docs page that describe it all. Clients written for Agno's AgentOS, such as
// Agent UI, work against it unchanged.
//
// Handlers translate: they turn requests into calls on the run service, the
// store, the knowledge service and the trace reader, and return errors that
// one table (Status) maps to status codes. Every agent and team in the
// current snapshot is reachable the moment its YAML is saved: handlers
// resolve targets per request from the engine, never from a route table
// built at start-up.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/console/sse"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// Engine is what the API needs from the engine.
type Engine interface {
	Current() *engine.Snapshot
	Reload(ctx context.Context) (*engine.ReloadResult, error)
	LastReload() *engine.ReloadResult
	Dirs() []string
}

// Store is what the API needs from the session store.
type Store interface {
	Dialect() string
	GetSession(ctx context.Context, id string, f store.Filter) (*store.Session, error)
	ListSessions(ctx context.Context, q store.SessionQuery) ([]store.Session, int, error)
	RenameSession(ctx context.Context, id, name string, f store.Filter) (*store.Session, error)
	EditSummary(ctx context.Context, id, summary string, topics []string, f store.Filter) (*store.Session, error)
	DeleteSessions(ctx context.Context, ids []string, f store.Filter) ([]string, error)
	RunsPage(ctx context.Context, sessionID string, f store.Filter, limit, offset int) ([]store.Run, int, error)
	HasFinishedRun(ctx context.Context, sessionID string, f store.Filter) (bool, error)
	GetRun(ctx context.Context, id string, f store.Filter) (*store.Run, error)
	ListComponentRuns(ctx context.Context, q store.RunQuery) ([]store.Run, int, error)
	DailyMetrics(ctx context.Context, from, to time.Time) ([]store.DailyMetrics, error)
	Fires
	FileRecords
	BudgetCounters
	// Ready runs a cheap real query, for the readiness probe.
	Ready(ctx context.Context) error
}

// Knowledge is what the API needs from the knowledge service.
type Knowledge interface {
	Bases() []*spec.Knowledge
	Submit(ctx context.Context, u kb.Upload) (*knowledge.Document, bool, error)
	FetchURL(ctx context.Context, knowledgeID, url string) ([]byte, string, error)
	Get(ctx context.Context, id string) (*knowledge.Document, error)
	List(ctx context.Context, q knowledge.DocumentQuery) ([]knowledge.Document, int, error)
	Patch(ctx context.Context, id string, name, description *string, metadata map[string]any) (*knowledge.Document, error)
	Delete(ctx context.Context, id string) error
	Retry(ctx context.Context, id string) (*knowledge.Document, error)
	// Sync syncs a knowledge base's sources now and says what changed.
	Sync(ctx context.Context, id string) (kb.SyncResult, error)
	SearchWith(ctx context.Context, r kb.SearchRequest) ([]knowledge.Hit, error)
	MaxBytes() int64
	Config() kb.Config
}

// Runs is what the API needs from the run service: it starts, cancels and
// stops runs; the service owns their whole lifecycle.
type Runs interface {
	Start(ctx context.Context, p session.Params) (*session.Turn, error)
	Cancel(ctx context.Context, runID string, m session.Match) (bool, error)
	Resume(ctx context.Context, p session.ResumeParams) (*session.Replay, error)
	StopSessions(ctx context.Context, ids []string, userID string)
}

// Background queues runs for any replica to execute (background=true); the
// job engine's jobs.RunQueue.
type Background interface {
	Submit(ctx context.Context, p session.Params) (*session.Run, error)
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
	// Background runs background=true runs; nil refuses them (422).
	Background Background
	// Knowledge serves /knowledge routes; nil leaves them out.
	Knowledge Knowledge
	// Memories serves /memories, /memory_topics and /user_memory_stats;
	// nil leaves them out.
	Memories Memories
	// Queue serves /queue routes (the job engine's client); nil leaves
	// them out.
	Queue Queue
	// Triggers runs triggers now (POST /triggers/{name}/fire); nil leaves
	// that route out.
	Triggers Triggers
	// Traces answers /traces; nil leaves the routes out.
	Traces telemetry.Reader
	// Prometheus serves /metrics/prometheus; nil leaves it out.
	Prometheus http.Handler
	// Streams opens (and counts) the event streams of runs.
	Streams *sse.Streams
	// Keys are the accepted API keys; none means the server runs open.
	Keys   *auth.Keyring
	Logger *slog.Logger
	// Started is when the server started, for /health.
	Started time.Time
	// Closing is closed when the server begins to shut down: from then on
	// the readiness probe fails.
	Closing <-chan struct{}
	// Documented are the routes other groups serve that the OpenAPI
	// document describes too (the OpenAI surface).
	Documented []Route
	// Body bounds a request's body, in size and in the time it may take to
	// arrive; Upload bounds an upload's, which may be larger and slower
	// (the handler bounds its size). Timeout bounds every request but runs
	// and uploads. The server builds all three; nil bounds nothing.
	Body, Upload, Timeout gin.HandlerFunc
	// DBID identifies the database in AgentOS responses.
	DBID    string
	Version string
	// ReplicaID names this process among the replicas on one database, for
	// GET /config.
	ReplicaID string
	// Limits enforces the keys' and users' rate limits on every keyed
	// route; nil limits nothing (and costs nothing).
	Limits *ratelimit.Limiter
	// Learning applies decided learning proposals; nil leaves them
	// decided but unapplied.
	Learning LearningDecider
	// Erasers erase a user's data besides their sessions (which the API
	// always erases) on DELETE /users/{user_id}.
	Erasers []UserEraser
	// Files keeps the files sent with runs (multipart files); nil refuses
	// them. FileLimits bounds them; the store keeps their metadata with the
	// runs.
	Files      files.Store
	FileLimits files.Limits
	// Editor serves the spec editor's routes under /config (admin only);
	// nil leaves them out.
	Editor Editor
}

// Editor mounts the spec editor's JSON routes (console/editor.Service).
type Editor interface {
	Register(r gin.IRouter)
}

// Handler serves the REST API.
type Handler struct {
	opts Options
	log  *slog.Logger
	// docsCache keeps /openapi.json and /docs of the current snapshot.
	docsCache apiDocsCache
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
	return &Handler{opts: opts, log: opts.Logger}
}

// Register mounts the API's routes on r, which carries the server's own
// middleware (host check, CORS). Every route bounds its body (uploads with
// Options.Upload, the rest with Options.Body); health probes need no key,
// every other route needs one with its scope; all but runs and uploads are
// bounded by Options.Timeout.
func (h *Handler) Register(r gin.IRouter) {
	bearer := auth.Bearer(h.opts.Keys, h.Deny)
	bounded := r.Group("", h.opts.Body)
	bounded.GET("/health", h.health)
	bounded.GET("/health/ready", h.ready)

	authn := []gin.HandlerFunc{bearer}
	if h.opts.Limits != nil {
		authn = append(authn, h.opts.Limits.Middleware(h.Fail))
	}
	keyed := bounded.Group("", authn...)
	uploads := r.Group("", append([]gin.HandlerFunc{h.opts.Upload}, authn...)...)
	timed := keyed.Group("", h.opts.Timeout)
	need := h.Require
	timed.GET("/config", need(auth.ScopeAgentsRead), h.wrap(h.getConfig))
	timed.POST("/config/reload", need(auth.ScopeAdmin), h.wrap(h.reload))
	if h.opts.Editor != nil {
		// Editing the spec files the server runs is an operator's act.
		h.opts.Editor.Register(timed.Group("/config", need(auth.ScopeAdmin)))
	}
	timed.GET("/models", need(auth.ScopeAgentsRead), h.wrap(h.listModels))
	timed.GET("/openapi.json", need(auth.ScopeAgentsRead), h.wrap(h.openapi))
	// /docs is also read in a browser: the console's sign-in works for it.
	docsAuthn := []gin.HandlerFunc{auth.Document(h.opts.Keys, h.Deny, signIn)}
	if h.opts.Limits != nil {
		docsAuthn = append(docsAuthn, h.opts.Limits.Middleware(h.Fail))
	}
	bounded.Group("", docsAuthn...).GET("/docs", h.opts.Timeout, need(auth.ScopeAgentsRead), h.wrap(h.docs))

	timed.GET("/agents", need(auth.ScopeAgentsRead), h.wrap(h.listAgents))
	timed.GET("/agents/:id", need(auth.ScopeAgentsRead), h.wrap(h.getAgent))
	keyed.POST("/agents/:id/runs", need(auth.ScopeAgentsRun), h.wrap(h.createRun("agent")))
	timed.GET("/agents/:id/runs", need(auth.ScopeSessionsRead), h.wrap(h.listRuns("agent")))
	timed.GET("/agents/:id/runs/:run_id", need(auth.ScopeSessionsRead), h.wrap(h.getRun("agent")))
	timed.POST("/agents/:id/runs/:run_id/cancel", need(auth.ScopeAgentsRun), h.wrap(h.cancelRun("agent")))
	// Resumed streams last as long as their run, like the run routes.
	keyed.POST("/agents/:id/runs/:run_id/continue", need(auth.ScopeAgentsRun), h.wrap(h.continueAgentRun("agent")))
	keyed.POST("/agents/:id/runs/:run_id/resume", need(auth.ScopeAgentsRun), h.wrap(h.resumeRun("agent")))
	keyed.GET("/agents/:id/runs/:run_id/resume", need(auth.ScopeAgentsRun), h.wrap(h.resumeRun("agent")))
	timed.GET("/teams", need(auth.ScopeAgentsRead), h.wrap(h.listTeams))
	timed.GET("/teams/:id", need(auth.ScopeAgentsRead), h.wrap(h.getTeam))
	keyed.POST("/teams/:id/runs", need(auth.ScopeAgentsRun), h.wrap(h.createRun("team")))
	timed.GET("/teams/:id/runs", need(auth.ScopeSessionsRead), h.wrap(h.listRuns("team")))
	timed.GET("/teams/:id/runs/:run_id", need(auth.ScopeSessionsRead), h.wrap(h.getRun("team")))
	timed.POST("/teams/:id/runs/:run_id/cancel", need(auth.ScopeAgentsRun), h.wrap(h.cancelRun("team")))
	keyed.POST("/teams/:id/runs/:run_id/continue", need(auth.ScopeAgentsRun), h.wrap(h.continueAgentRun("team")))
	keyed.POST("/teams/:id/runs/:run_id/resume", need(auth.ScopeAgentsRun), h.wrap(h.resumeRun("team")))
	keyed.GET("/teams/:id/runs/:run_id/resume", need(auth.ScopeAgentsRun), h.wrap(h.resumeRun("team")))
	timed.GET("/workflows", need(auth.ScopeAgentsRead), h.wrap(h.listWorkflows))
	timed.GET("/workflows/:id", need(auth.ScopeAgentsRead), h.wrap(h.getWorkflow))
	keyed.POST("/workflows/:id/runs", need(auth.ScopeAgentsRun), h.wrap(h.createRun("workflow")))
	timed.GET("/workflows/:id/runs", need(auth.ScopeSessionsRead), h.wrap(h.listRuns("workflow")))
	timed.GET("/workflows/:id/runs/:run_id", need(auth.ScopeSessionsRead), h.wrap(h.getWorkflowRun))
	timed.POST("/workflows/:id/runs/:run_id/cancel", need(auth.ScopeAgentsRun), h.wrap(h.cancelRun("workflow")))
	timed.POST("/workflows/:id/runs/:run_id/continue", need(auth.ScopeAgentsRun), h.wrap(h.continueRun))
	keyed.POST("/workflows/:id/runs/:run_id/resume", need(auth.ScopeAgentsRun), h.wrap(h.resumeRun("workflow")))
	keyed.GET("/workflows/:id/runs/:run_id/resume", need(auth.ScopeAgentsRun), h.wrap(h.resumeRun("workflow")))

	timed.GET("/approvals", need(auth.ScopeApprovalsWrite), h.wrap(h.listApprovals))
	timed.GET("/approvals/count", need(auth.ScopeApprovalsWrite), h.wrap(h.countApprovals))
	timed.GET("/approvals/:id", need(auth.ScopeApprovalsWrite), h.wrap(h.getApproval))
	timed.POST("/approvals/:id/resolve", need(auth.ScopeApprovalsWrite), h.wrap(h.resolveApproval))
	timed.GET("/sessions", need(auth.ScopeSessionsRead), h.wrap(h.listSessions))
	timed.GET("/sessions/:id", need(auth.ScopeSessionsRead), h.wrap(h.getSession))
	timed.GET("/sessions/:id/runs", need(auth.ScopeSessionsRead), h.wrap(h.listSessionRuns))
	timed.POST("/sessions/:id/rename", need(auth.ScopeSessionsWrite), h.wrap(h.renameSession))
	timed.PATCH("/sessions/:id", need(auth.ScopeSessionsWrite), h.wrap(h.updateSession))
	timed.GET("/sessions/:id/files", need(auth.ScopeSessionsRead), h.wrap(h.listSessionFiles))
	timed.GET("/sessions/:id/files/:file_id", need(auth.ScopeSessionsRead), h.wrap(h.downloadFile))
	timed.DELETE("/sessions/:id", need(auth.ScopeSessionsWrite), h.wrap(h.deleteSession))
	timed.DELETE("/sessions", need(auth.ScopeSessionsWrite), h.wrap(h.deleteSessions))

	if h.opts.Memories != nil {
		// Memories are a user's data, like their sessions: the same scopes.
		timed.GET("/memories", need(auth.ScopeSessionsRead), h.wrap(h.listMemories))
		timed.POST("/memories", need(auth.ScopeSessionsWrite), h.wrap(h.createMemory))
		timed.DELETE("/memories", need(auth.ScopeSessionsWrite), h.wrap(h.deleteMemories))
		timed.GET("/memories/:memory_id", need(auth.ScopeSessionsRead), h.wrap(h.getMemory))
		timed.PATCH("/memories/:memory_id", need(auth.ScopeSessionsWrite), h.wrap(h.patchMemory))
		timed.DELETE("/memories/:memory_id", need(auth.ScopeSessionsWrite), h.wrap(h.deleteMemory))
		timed.GET("/memory_topics", need(auth.ScopeSessionsRead), h.wrap(h.memoryTopics))
		timed.GET("/user_memory_stats", need(auth.ScopeSessionsRead), h.wrap(h.userMemoryStats))
	}
	if h.opts.Knowledge != nil {
		timed.GET("/knowledge/config", need(auth.ScopeKnowledgeRead), h.wrap(h.knowledgeConfig))
		uploads.POST("/knowledge/content", need(auth.ScopeKnowledgeWrite), h.wrap(h.uploadContent))
		timed.GET("/knowledge/content", need(auth.ScopeKnowledgeRead), h.wrap(h.listContent))
		timed.GET("/knowledge/content/:id", need(auth.ScopeKnowledgeRead), h.wrap(h.getContent))
		timed.GET("/knowledge/content/:id/status", need(auth.ScopeKnowledgeRead), h.wrap(h.contentStatus))
		timed.PATCH("/knowledge/content/:id", need(auth.ScopeKnowledgeWrite), h.wrap(h.patchContent))
		timed.DELETE("/knowledge/content/:id", need(auth.ScopeKnowledgeWrite), h.wrap(h.deleteContent))
		timed.POST("/knowledge/content/:id/retry", need(auth.ScopeKnowledgeWrite), h.wrap(h.retryContent))
		timed.POST("/knowledge/search", need(auth.ScopeKnowledgeRead), h.wrap(h.searchKnowledge))
		timed.POST("/knowledge/:id/sync", need(auth.ScopeKnowledgeWrite), h.wrap(h.syncKnowledge))
	}

	if h.opts.Traces != nil {
		timed.GET("/traces", need(auth.ScopeSessionsRead), h.wrap(h.listTraces))
		timed.GET("/traces/:trace_id", need(auth.ScopeSessionsRead), h.wrap(h.getTrace))
	}
	// The job engine's queues hold every user's jobs (their run and
	// session ids, their errors): they are operators' business, like the
	// metrics.
	if h.opts.Queue != nil {
		timed.GET("/queue/stats", need(auth.ScopeAdmin), h.wrap(h.queueStats))
		timed.GET("/queue/jobs", need(auth.ScopeAdmin), h.wrap(h.listJobs))
		timed.POST("/queue/jobs/:job_id/requeue", need(auth.ScopeAdmin), h.wrap(h.requeueJob))
	}
	timed.GET("/triggers", need(auth.ScopeAgentsRead), h.wrap(h.listTriggers))
	timed.GET("/triggers/:name", need(auth.ScopeAgentsRead), h.wrap(h.getTrigger))
	timed.GET("/budgets", need(auth.ScopeSessionsRead), h.wrap(h.listBudgets))
	timed.GET("/budgets/:name", need(auth.ScopeSessionsRead), h.wrap(h.getBudget))
	if h.opts.Triggers != nil {
		// Starting a run nobody asked for at the trigger's target, with
		// the trigger's input, is an operator's decision.
		timed.POST("/triggers/:name/fire", need(auth.ScopeAdmin), h.wrap(h.fireTrigger))
	}
	timed.GET("/metrics", need(auth.ScopeAdmin), h.wrap(h.dailyMetrics))
	timed.DELETE("/users/:user_id", need(auth.ScopeAdmin), h.wrap(h.deleteUser))
	if prom := h.opts.Prometheus; prom != nil {
		timed.GET("/metrics/prometheus", need(auth.ScopeAdmin), func(c *gin.Context) { prom.ServeHTTP(c.Writer, c.Request) })
	}
}

// handlerFunc is an API handler: it writes its answer, or returns the error
// the table (Status) turns into one.
type handlerFunc func(c *gin.Context) error

// wrap adapts a handlerFunc to gin, answering its error.
func (h *Handler) wrap(f handlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := f(c); err != nil {
			h.Fail(c, err)
		}
	}
}

// Require refuses callers without scope with the API's 403.
func (h *Handler) Require(scope auth.Scope) gin.HandlerFunc { return auth.Require(scope, h.Deny) }

// Deny answers a request the authentication middleware refused.
func (h *Handler) Deny(c *gin.Context, err *auth.Error) { h.Fail(c, err) }
