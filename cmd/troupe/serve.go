package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/troupehq/troupe/console"
	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/editor"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/kafka"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/learning"
	"github.com/troupehq/troupe/engine/memory"
	"github.com/troupehq/troupe/engine/memory/extract"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/summary"
	"github.com/troupehq/troupe/engine/tool/egress"
	"github.com/troupehq/troupe/engine/trigger"
	"github.com/troupehq/troupe/engine/workflow"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/watch"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
	"github.com/troupehq/troupe/telemetry/clickhouse"
	"github.com/troupehq/troupe/telemetry/otlp"
)

// serveConfig is everything serve reads from flags and the environment.
type serveConfig struct {
	dir, addr, db, logLevel, keys, keysFile, cors, traces, allowedHosts string
	replicaID                                                           string
	readRoots                                                           []string
	insecure                                                            bool
	mcp                                                                 bool
	shutdownTimeout                                                     time.Duration
	drainDelay                                                          time.Duration
	bodyTimeout, uploadTimeout, idleTimeout                             time.Duration
	// jobLease is how long a job may run before it counts as abandoned by
	// a dead replica (River's rescue delay).
	jobLease time.Duration
	// replicaLease is how long a silent replica's runs stay RUNNING before
	// another replica fails them (the store's lease; the heartbeat and the
	// recovery sweep are paced from it).
	replicaLease time.Duration
	// filesDir keeps the files sent with runs; the limits bound them.
	filesDir                                   string
	maxFileBytes, maxRunFileBytes, maxRunFiles int
	maxConnections                             int
	traceTTLDays                               int
	// maxRuns is this replica's concurrent background runs; maxQueued the
	// background runs that may wait to start, over every replica.
	maxRuns, maxQueued int
	// memoriesPerUser and memoriesPerAgent bound a user's memories, and
	// those of one agent of a user.
	memoriesPerUser, memoriesPerAgent int
	// memoryKnowledge names the knowledge base whose embedder and vector
	// store index memories (empty: the local embedder, the embedded store).
	memoryKnowledge string
	// idempotencyTTL is how long an Idempotency-Key replays its run.
	idempotencyTTL time.Duration
	// userLimit is every user's rate limit (--user-rate-limit,
	// --user-burst, --user-concurrent-runs).
	userLimit auth.RateLimit
	// approvalsWebhook announces new approvals, signed with
	// approvalsWebhookSecret; approvalsWebhookHosts may be reached even on
	// private addresses.
	approvalsWebhook, approvalsWebhookSecret, approvalsWebhookHosts string
	// otlpEndpoint and otlpProtocol send spans to an OTLP collector (also
	// on when OTEL_EXPORTER_OTLP_ENDPOINT is set); traceContent and
	// traceContentBound say whether traces record conversations, and for
	// the runs of user-bound keys.
	otlpEndpoint, otlpProtocol      string
	traceContent, traceContentBound bool
}

func parseServe(args []string, getenv env, stderr io.Writer) (*serveConfig, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &serveConfig{}
	fs.StringVar(&c.dir, "dir", envOr(getenv, "TROUPE_DIR", "agents.d"), "spec folder (env TROUPE_DIR)")
	fs.StringVar(&c.addr, "addr", envOr(getenv, "TROUPE_ADDR", "127.0.0.1:7777"), "listen address (env TROUPE_ADDR)")
	fs.StringVar(&c.db, "db", envOr(getenv, "TROUPE_DB", filepath.Join("data", "troupe.db")), "SQLite file or postgres:// URL (env TROUPE_DB)")
	fs.StringVar(&c.logLevel, "log-level", envOr(getenv, "TROUPE_LOG_LEVEL", "info"), "debug, info, warn or error (env TROUPE_LOG_LEVEL)")
	fs.StringVar(&c.keysFile, "api-keys-file", envOr(getenv, "TROUPE_API_KEYS_FILE", ""), "YAML file of API keys (env TROUPE_API_KEYS_FILE)")
	fs.StringVar(&c.cors, "cors-origins", envOr(getenv, "TROUPE_CORS_ORIGINS", ""), "comma-separated allowed browser origins; host:* allows any port (env TROUPE_CORS_ORIGINS)")
	fs.StringVar(&c.allowedHosts, "allowed-hosts", envOr(getenv, "TROUPE_ALLOWED_HOSTS", ""),
		"comma-separated host names the server answers to besides its own addresses, e.g. troupe.example.com or *.example.com; * turns the check off (API keys required) (env TROUPE_ALLOWED_HOSTS)")
	fs.StringVar(&c.traces, "traces", envOr(getenv, "TROUPE_TRACES", "sql"), "where traces go: sql, clickhouse://host:9000/db or off (env TROUPE_TRACES)")
	fs.StringVar(&c.replicaID, "replica-id", envOr(getenv, "TROUPE_REPLICA_ID", ""), "this replica's name in GET /config and on the runs it executes; a restart under the same name fails at once the runs its previous process left running (default host name and process id) (env TROUPE_REPLICA_ID)")
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", envOr(getenv, "TROUPE_OTLP_ENDPOINT", ""),
		"OpenTelemetry collector to export spans to, beside --traces, such as http://127.0.0.1:4318 (HTTP) or http://127.0.0.1:4317 (gRPC); OTEL_EXPORTER_OTLP_ENDPOINT also turns export on (env TROUPE_OTLP_ENDPOINT)")
	fs.StringVar(&c.otlpProtocol, "otlp-protocol", envOr(getenv, "TROUPE_OTLP_PROTOCOL", ""),
		"grpc or http/protobuf (default OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf) (env TROUPE_OTLP_PROTOCOL)")
	fs.BoolVar(&c.traceContent, "trace-content", envOr(getenv, "TROUPE_TRACE_CONTENT", "true") != "false",
		"record on model-request spans what the model was sent and answered, scrubbed of configured secrets; agents and teams opt out with trace: {content: false} (env TROUPE_TRACE_CONTENT=false turns it off)")
	fs.BoolVar(&c.traceContentBound, "trace-content-bound-keys", envOr(getenv, "TROUPE_TRACE_CONTENT_BOUND_KEYS", "true") != "false",
		"record conversations for runs started by user-bound API keys too; false keeps users' conversations out of traces (env TROUPE_TRACE_CONTENT_BOUND_KEYS)")
	fs.BoolVar(&c.insecure, "insecure", envOr(getenv, "TROUPE_INSECURE", "") == "1", "serve without API keys on a non-loopback address (env TROUPE_INSECURE=1)")
	fs.BoolVar(&c.mcp, "mcp", envOr(getenv, "TROUPE_MCP", "1") != "0", "serve agents, teams and workflows as MCP tools at /mcp (env TROUPE_MCP=0 turns it off)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight runs may finish on shutdown")
	readRootsFlag(fs, getenv, &c.readRoots)
	var envErr error
	durationFlag := func(p *time.Duration, name, key string, def time.Duration, usage string) {
		if v, ok := getenv(key); ok && v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				envErr = errors.Join(envErr, fmt.Errorf("%s %q: use a positive duration such as 30s or 5m", key, v))
			}
			def = d
		}
		fs.DurationVar(p, name, def, usage+" (env "+key+")")
	}
	durationFlag(&c.bodyTimeout, "body-timeout", "TROUPE_BODY_TIMEOUT", 30*time.Second, "how long reading a request body may take, uploads aside")
	durationFlag(&c.uploadTimeout, "upload-timeout", "TROUPE_UPLOAD_TIMEOUT", 10*time.Minute, "how long reading an upload may take")
	durationFlag(&c.idleTimeout, "idle-timeout", "TROUPE_IDLE_TIMEOUT", 60*time.Second, "how long a kept-alive connection may wait for its next request")
	durationFlag(&c.jobLease, "job-lease", "TROUPE_JOB_LEASE", time.Hour,
		"how long a job (an ingestion, a background run) may run: one whose replica died is given back after it (an ingestion is retried, a background run ends ERROR), one still running then is cancelled; longer than the longest run")
	durationFlag(&c.replicaLease, "replica-lease", "TROUPE_REPLICA_LEASE", store.DefaultReplicaLease,
		"how long after its last heartbeat a replica counts as dead, its running runs then ended ERROR by another replica; it heartbeats every third of it and looks for dead replicas every two leases; at least 1s")
	drainDelay := time.Duration(0)
	if v, ok := getenv("TROUPE_DRAIN_DELAY"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			envErr = errors.Join(envErr, fmt.Errorf("TROUPE_DRAIN_DELAY %q: use a duration such as 3s, or 0", v))
		}
		drainDelay = d
	}
	fs.DurationVar(&c.drainDelay, "drain-delay", drainDelay,
		"on shutdown, how long to keep accepting requests with the readiness probe failing, so a load balancer stops sending work first; a little over its health check interval (env TROUPE_DRAIN_DELAY)")
	durationFlag(&c.idempotencyTTL, "idempotency-ttl", "TROUPE_IDEMPOTENCY_TTL", session.DefaultIdempotencyTTL,
		"how long an Idempotency-Key replays the run its first request made; after that the key is new again and expired keys are purged")
	maxConns := 1024
	if v, ok := getenv("TROUPE_MAX_CONNECTIONS"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			envErr = errors.Join(envErr, fmt.Errorf("TROUPE_MAX_CONNECTIONS %q: use a positive number", v))
		}
		maxConns = n
	}
	ttlDays := 7
	if v, ok := getenv("TROUPE_TRACE_TTL_DAYS"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			envErr = errors.Join(envErr, fmt.Errorf("TROUPE_TRACE_TTL_DAYS %q: use a number of days, 0 to keep traces forever", v))
		}
		ttlDays = n
	}
	fs.IntVar(&c.traceTTLDays, "trace-ttl-days", ttlDays,
		"days the sql trace sink keeps traces, 0 for ever; for ClickHouse use ttl_days in its URL (env TROUPE_TRACE_TTL_DAYS)")
	fs.IntVar(&c.maxConnections, "max-connections", maxConns, "connections served at once; more wait to be accepted (env TROUPE_MAX_CONNECTIONS)")
	intFlag := func(p *int, name, key string, def int, usage string) {
		if v, ok := getenv(key); ok && v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				envErr = errors.Join(envErr, fmt.Errorf("%s %q: use a positive number", key, v))
			}
			def = n
		}
		fs.IntVar(p, name, def, usage+" (env "+key+")")
	}
	fs.StringVar(&c.approvalsWebhook, "approvals-webhook", envOr(getenv, "TROUPE_APPROVALS_WEBHOOK", ""),
		"URL that new approvals are POSTed to as JSON, retried until it answers 2xx (env TROUPE_APPROVALS_WEBHOOK)")
	fs.StringVar(&c.approvalsWebhookSecret, "approvals-webhook-secret", envOr(getenv, "TROUPE_APPROVALS_WEBHOOK_SECRET", ""),
		"secret of the HMAC-SHA256 signature in the webhook's X-Troupe-Signature header (sha256=<hex>); prefer the env variable (env TROUPE_APPROVALS_WEBHOOK_SECRET)")
	fs.StringVar(&c.approvalsWebhookHosts, "approvals-webhook-allowed-hosts", envOr(getenv, "TROUPE_APPROVALS_WEBHOOK_ALLOWED_HOSTS", ""),
		"comma-separated hosts the webhook may reach on private or loopback addresses; public addresses need none (env TROUPE_APPROVALS_WEBHOOK_ALLOWED_HOSTS)")
	fs.StringVar(&c.memoryKnowledge, "memory-knowledge", envOr(getenv, "TROUPE_MEMORY_KNOWLEDGE", ""), "knowledge base whose embedder and vector store (embedded or Milvus) index user memories; empty: the local embedder and the embedded store (env TROUPE_MEMORY_KNOWLEDGE)")
	intFlag(&c.memoriesPerUser, "max-memories-per-user", "TROUPE_MAX_MEMORIES_PER_USER", memory.DefaultMaxPerUser, "memories kept per user; adding past it deletes the least recently updated")
	intFlag(&c.memoriesPerAgent, "max-memories-per-agent", "TROUPE_MAX_MEMORIES_PER_AGENT", memory.DefaultMaxPerAgent, "memories kept per agent of a user; adding past it deletes the agent's least recently updated")
	fs.StringVar(&c.filesDir, "files-dir", envOr(getenv, "TROUPE_FILES_DIR", filepath.Join("data", "files")),
		"directory that keeps the files sent with runs; replicas sharing a database need it shared too (env TROUPE_FILES_DIR)")
	intFlag(&c.maxFileBytes, "max-run-file-bytes", "TROUPE_MAX_RUN_FILE_BYTES", files.DefaultMaxFileBytes, "bytes of one file sent with a run (413 past it)")
	intFlag(&c.maxRunFileBytes, "max-run-files-bytes", "TROUPE_MAX_RUN_FILES_BYTES", files.DefaultMaxRunBytes, "bytes of all the files sent with one run (413 past it); the request body limit bounds it too")
	intFlag(&c.maxRunFiles, "max-run-files", "TROUPE_MAX_RUN_FILES", files.DefaultMaxFiles, "files sent with one run (413 past it)")
	intFlag(&c.maxRuns, "max-background-runs", "TROUPE_MAX_BACKGROUND_RUNS", 8, "background runs this replica executes at once")
	intFlag(&c.maxQueued, "max-queued-runs", "TROUPE_MAX_QUEUED_RUNS", 1000, "background runs that may wait to start; more are refused with 429")
	userRate := 0.0
	if v, ok := getenv("TROUPE_USER_RATE_LIMIT"); ok && v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			envErr = errors.Join(envErr, fmt.Errorf("TROUPE_USER_RATE_LIMIT %q: use requests per second, such as 5 or 0.5", v))
		}
		userRate = f
	}
	fs.Float64Var(&c.userLimit.RequestsPerSecond, "user-rate-limit", userRate,
		"requests per second each user may send to the API (the key's user, else the request's user_id, else the client address); 0 for no limit (env TROUPE_USER_RATE_LIMIT)")
	limitFlag := func(p *int, name, key, usage string) {
		def := 0
		if v, ok := getenv(key); ok && v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				envErr = errors.Join(envErr, fmt.Errorf("%s %q: use a whole number, 0 for no limit", key, v))
			}
			def = n
		}
		fs.IntVar(p, name, def, usage+" (env "+key+")")
	}
	limitFlag(&c.userLimit.Burst, "user-burst", "TROUPE_USER_BURST", "requests a user may send at once above --user-rate-limit after a quiet spell (default: the rate rounded up)")
	limitFlag(&c.userLimit.ConcurrentRuns, "user-concurrent-runs", "TROUPE_USER_CONCURRENT_RUNS", "runs each user may have pending or running at once, over every replica; more are refused with 429; 0 for no limit")
	if err := fs.Parse(args); err != nil {
		return nil, parseError(err)
	}
	if c.approvalsWebhook != "" {
		if u, err := url.Parse(c.approvalsWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			envErr = errors.Join(envErr, fmt.Errorf("--approvals-webhook %q: use an http or https URL", c.approvalsWebhook))
		}
	}
	if envErr != nil {
		return nil, envErr
	}
	if c.bodyTimeout <= 0 || c.uploadTimeout <= 0 || c.idleTimeout <= 0 || c.maxConnections <= 0 || c.maxRuns <= 0 || c.maxQueued <= 0 || c.memoriesPerUser <= 0 || c.memoriesPerAgent <= 0 || c.idempotencyTTL <= 0 {
		return nil, errors.New("--body-timeout, --upload-timeout, --idle-timeout, --max-connections, --max-background-runs, --max-queued-runs and --idempotency-ttl must be positive")
	}
	if c.replicaLease < time.Second {
		return nil, errors.New("--replica-lease must be at least 1s: a replica heartbeats every third of it")
	}
	if err := c.userLimit.Validate("user rate limit"); err != nil {
		return nil, fmt.Errorf("%w (set with --user-rate-limit, --user-burst and --user-concurrent-runs)", err)
	}
	if c.traceTTLDays < 0 {
		return nil, errors.New("--trace-ttl-days must be 0 (keep traces forever) or more")
	}
	c.keys, _ = getenv("TROUPE_API_KEYS")
	return c, nil
}

// serve loads the folder, watches it, and serves the API until ctx is
// cancelled; then it drains in-flight runs and closes the store.
func serve(ctx context.Context, args []string, getenv env, stderr io.Writer) error {
	cfg, err := parseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return fmt.Errorf("invalid --log-level %q: use debug, info, warn or error", cfg.logLevel)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	started := time.Now()

	keys, err := auth.ParseKeys(cfg.keys)
	if err != nil {
		return fmt.Errorf("TROUPE_API_KEYS: %w", err)
	}
	if cfg.keysFile != "" {
		if err := auth.LoadKeysFile(cfg.keysFile, keys); err != nil {
			return err
		}
	}
	if keys.Len() == 0 && !isLoopback(cfg.addr) && !cfg.insecure {
		return fmt.Errorf("refusing to serve %s without API keys: set TROUPE_API_KEYS (or --api-keys-file), listen on 127.0.0.1, or pass --insecure", cfg.addr)
	}

	hosts := splitList(cfg.allowedHosts)
	if slices.Contains(hosts, "*") && keys.Len() == 0 {
		return fmt.Errorf("refusing --allowed-hosts '*' without API keys: any web page could then use the API through DNS rebinding; list the names instead, or set TROUPE_API_KEYS")
	}
	if host, _, err := net.SplitHostPort(cfg.addr); err == nil && host != "" && net.ParseIP(host) == nil {
		// --addr names the server: requests for that name are its own.
		hosts = append(hosts, host)
	}

	// Replicas sharing a PostgreSQL database record their runs under
	// distinct ids (host name and process id by default), so that recovery
	// fails only the runs of replicas that died. A SQLite database serves one
	// process: unless told otherwise it keeps the store's fixed default, so
	// that a restart fails at once what the previous process left running.
	replicaID := cfg.replicaID
	if replicaID == "" && store.IsPostgres(cfg.db) {
		replicaID = console.DefaultReplicaID()
	}
	runFiles, err := files.NewDisk(cfg.filesDir)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.db, store.Options{Logger: logger.With("component", "store"), ReplicaID: replicaID, ReplicaLease: cfg.replicaLease, Blobs: runFiles})
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer db.Close()

	// The job client is built before the services that queue jobs on it;
	// their workers are registered before it runs.
	jobReg := jobs.NewRegistry()
	jobClient, err := db.OpenJobs(ctx, jobs.Options{Registry: jobReg, StopTimeout: cfg.shutdownTimeout,
		Queues: map[string]int{jobs.RunQueueName: cfg.maxRuns}, RescueAfter: cfg.jobLease, Logger: logger.With("component", "jobs")})
	if err != nil {
		return err
	}
	kbs, err := kb.New(ctx, kb.Options{
		Documents: db.Knowledge(), Chunks: db.Knowledge(), Stats: db.Knowledge(), Fetches: db.Knowledge(), Env: spec.Env(getenv), Queue: jobs.IngestQueue{Client: jobClient},
		NewMilvus: newMilvus, HTTPClient: egress.Policy{}.Client(time.Minute), Logger: logger.With("component", "knowledge"),
		// A knowledge base's allowed_hosts let its URL sources and uploads
		// by URL reach those hosts (and only those), private or not.
		HostsClient: func(hosts []string) *http.Client { return egress.Policy{AllowedHosts: hosts}.Client(time.Minute) },
	})
	if err != nil {
		return err
	}
	defer kbs.Close()
	jobs.RegisterIngestion(jobReg, kbs)
	// Knowledge bases with a kafka source: one consumer each in this
	// process, joining the group the other replicas join.
	streams := kafka.NewManager(kafka.ManagerOptions{Index: kbs, Logger: logger.With("component", "kafka")})
	// User memories: rows in SQL, indexed under a knowledge id no spec can
	// name, by default with the local embedder in the embedded store the
	// knowledge bases share (persisted, followed across replicas), or in
	// the named knowledge base's store with its embedder.
	memIndex := memory.NewIndex(embed.NewLocal(embed.LocalOptions{Dimension: kb.LocalDimension}), kbs.Embedded())
	if name := cfg.memoryKnowledge; name != "" {
		memIndex = memory.NewIndexOn(func(context.Context) (knowledge.Embedder, knowledge.VectorStore, func(), error) {
			return kbs.Backend(name)
		})
	}
	memories := memory.New(memory.Options{Store: db, Index: memIndex,
		MaxPerUser: cfg.memoriesPerUser, MaxPerAgent: cfg.memoriesPerAgent, Logger: logger.With("component", "memory")})
	rt, pool := newRuntime(getenv, logger, kbs)
	defer pool.Close()
	// Workflow runs checkpoint their steps in the database, so a run
	// interrupted by a crash resumes after its last finished step.
	rt.Workflows = func(w *engine.Workflow) agent.Runner {
		return workflow.New(w, workflow.Options{Checkpoints: db, Runs: db})
	}
	// Budget counters live in the database, shared by every replica.
	rt.Budgets = db
	// Agents with learning save insights into knowledge bases: distilled
	// after their runs by a job, or through their save_learning tool, or
	// proposed in the approvals inbox. The learner pins agents on the
	// engine, built next with the learner's tool.
	var eng *engine.Engine
	learner := learning.New(learning.Options{Knowledge: kbs, Proposals: db, Usage: db, Queue: jobs.LearningQueue{Client: jobClient},
		Agents: learning.PinFunc(func(k spec.Kind, name string) (session.Target, error) { return eng.Pin(k, name) }), Logger: logger})
	rt.Learning = learner
	// Agents and teams with memory recall the user's memories into their
	// context, get the memory tools (agentic), and have their runs'
	// memories extracted by a job after the run (automatic).
	rt.Memory = memories
	extractor := &extract.Extractor{Memories: memories, Queue: extract.Queue{Client: jobClient}, Usage: db, Log: logger.With("component", "memory"),
		Targets: learning.PinFunc(func(k spec.Kind, name string) (session.Target, error) { return eng.Pin(k, name) })}
	extract.Register(jobReg, extractor)
	jobs.RegisterLearning(jobReg, learner)
	eng, err = engine.New(engine.Options{Dirs: []string{cfg.dir}, ReadRoots: cfg.readRoots, Env: spec.Env(getenv), Logger: logger.With("component", "engine"), Runtime: rt,
		ApproverScopes: auth.ScopeNames()})
	if err != nil {
		return fmt.Errorf("loading %s: %w", cfg.dir, err)
	}
	defer eng.Close()
	if cfg.memoryKnowledge != "" {
		// The memories' knowledge base must be open before they index;
		// followKnowledge configures the same bases again, a no-op.
		kbs.Configure(ctx, eng.Current().Knowledge())
	}
	if _, err := memories.Sync(ctx); err != nil {
		// Memories stay readable and writable in SQL; recalling them
		// fails until the index is back (an unreachable Milvus), or the
		// configuration names a knowledge base that exists.
		logger.Error("user memories cannot be indexed: check --memory-knowledge and its store", "knowledge", cfg.memoryKnowledge, "err", err)
	}
	w, err := watch.New(watch.Options{Dirs: []string{cfg.dir}, Logger: logger.With("component", "watch")})
	if err != nil {
		return fmt.Errorf("watching %s: %w", cfg.dir, err)
	}

	origins := splitList(cfg.cors)
	tel, err := openTelemetry(ctx, cfg.traces, cfg.db, db, time.Duration(cfg.traceTTLDays)*24*time.Hour, logger)
	if err != nil {
		return err
	}
	defer tel.close()
	exp, err := openOTLP(ctx, cfg, getenv, logger)
	if err != nil {
		return err
	}
	metrics := telemetry.NewMetrics()
	wireMetrics(metrics, eng, tel.recorder, kbs, jobClient)
	metrics.SetKafkaLagSource(streams.Lag)
	if exp != nil {
		metrics.SetExportSource(func() (int, uint64) { q, d, _ := exp.Stats(); return q, d })
	}
	tracer := newTracer(tel.recorder, tel.reader, exp, telemetry.ContentPolicy{Content: telemetry.Content{Enabled: cfg.traceContent}, SkipBoundKeys: !cfg.traceContentBound})
	var extra []session.Observer
	if exp != nil {
		// With spans, the key run metrics go to the collector too.
		om, err := otlp.NewMetrics(ctx, otlp.MetricsOptions{Endpoint: cfg.otlpEndpoint, Protocol: cfg.otlpProtocol, Getenv: func(k string) string { v, _ := getenv(k); return v }})
		if err != nil {
			return fmt.Errorf("--otlp-endpoint: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = om.Shutdown(sctx)
		}()
		extra = append(extra, om)
	}
	extra = append(extra, learner, extractor)
	runs := newRunService(eng, db, jobs.Resumer{Client: jobClient}, jobs.Approvals{Client: jobClient, Webhook: cfg.approvalsWebhook != ""}, tracer, metrics, cfg.shutdownTimeout, cfg.replicaLease, cfg.idempotencyTTL, logger, summary.Queue{Client: jobClient}, memories, runFiles, extra...)
	jobs.RegisterRuns(jobReg, runs)
	// Session summaries are folded by a job after the run that crossed the
	// threshold, on whichever replica takes it.
	summary.Register(jobReg, &summary.Worker{Store: db, Targets: eng, Log: logger.With("component", "summaries")})
	// Approvals' deadlines apply their defaults and resume their runs; new
	// approvals are announced to the webhook, through the egress guard.
	var hook *jobs.Webhook
	if cfg.approvalsWebhook != "" {
		hook = &jobs.Webhook{URL: cfg.approvalsWebhook, Secret: cfg.approvalsWebhookSecret,
			Client: egress.Policy{AllowedHosts: splitList(cfg.approvalsWebhookHosts)}.Client(30 * time.Second)}
	}
	jobs.RegisterApprovals(jobReg, db, runs, hook)
	// Expired keys already count as new; purging them keeps the table to a
	// retention's worth, checked at least hourly.
	jobs.RegisterKeyPurge(jobReg, db, runs.KeyCutoff, min(time.Hour, cfg.idempotencyTTL))
	// A run whose job was lost (its replica died between storing the run
	// and queueing the job) ends ERROR instead of waiting for ever.
	jobs.RegisterOrphanSweep(jobReg, jobClient, db, runs, time.Minute, 2*time.Minute)
	background := &jobs.RunQueue{Client: jobClient, Runs: runs, MaxDepth: cfg.maxQueued}
	// Triggers fire through the job engine (schedules) and the run queue.
	triggers := trigger.New(trigger.Options{Snapshots: eng, Jobs: jobClient, Runs: background, Store: db, Logger: logger.With("component", "triggers")})
	triggers.Register(jobReg)
	srv := console.New(console.Options{
		Engine: eng, Store: db, Knowledge: kbs, KafkaLag: streams.Lag, Memories: memories, Runs: runs, Traces: tel.traces(), Metrics: metrics, Triggers: triggers,
		Background: background, Queue: jobClient,
		// Approved learnings are saved; erasing a user erases their
		// learnings and memories too.
		Learning: learner, Erasers: []api.UserEraser{learner, memories},
		Logger: logger.With("component", "http"), Keys: keys, CORSOrigins: origins, AllowedHosts: hosts,
		BodyTimeout: cfg.bodyTimeout, UploadTimeout: cfg.uploadTimeout, IdleTimeout: cfg.idleTimeout, MaxConnections: cfg.maxConnections,
		ShutdownTimeout: cfg.shutdownTimeout, DrainDelay: cfg.drainDelay, DBID: "troupe-" + db.Dialect(), Version: buildVersion(),
		// The id the store stamps on this replica's runs ("local" on SQLite
		// unless set), so /config names the replica as the runs do.
		ReplicaID:  db.ReplicaID(),
		Limits:     ratelimit.New(ratelimit.Options{Store: db, Keys: keys, User: cfg.userLimit, Logger: logger.With("component", "ratelimit")}),
		DisableMCP: !cfg.mcp,
		Files:      runFiles,
		FileLimits: files.Limits{MaxFileBytes: int64(cfg.maxFileBytes), MaxRunBytes: int64(cfg.maxRunFileBytes), MaxFiles: cfg.maxRunFiles},
		Spans:      tel.spans(),
	})
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.addr, err)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx) })
	g.Go(func() error { return eng.Run(gctx, w.C()) })
	g.Go(func() error { return srv.Serve(gctx, ln) })
	g.Go(func() error { return runs.Run(gctx) })
	g.Go(func() error { return kbs.Run(gctx) })
	g.Go(func() error { return kbs.Follow(gctx) })
	g.Go(func() error { return jobClient.Run(gctx) })
	if tel.retain != nil {
		g.Go(func() error { return tel.retain(gctx) })
	}
	if tel.recorder != nil {
		// The recorder outlives the HTTP server so runs drained at shutdown
		// still have their spans flushed.
		recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
		recDone := make(chan error, 1)
		go func() { recDone <- tel.recorder.Run(recCtx) }()
		defer func() { stopRec(); <-recDone }()
	}
	if exp != nil {
		// Like the recorder, the exporter outlives the server to send the
		// spans of runs drained at shutdown.
		expCtx, stopExp := context.WithCancel(context.WithoutCancel(ctx))
		expDone := make(chan error, 1)
		go func() { expDone <- exp.Run(expCtx) }()
		defer func() {
			stopExp()
			<-expDone
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = exp.Shutdown(sctx)
		}()
	}
	g.Go(func() error { return followKnowledge(gctx, eng, kbs, streams) })
	g.Go(func() error { return streams.Run(gctx) })
	g.Go(func() error {
		updates, unsubscribe := eng.Subscribe()
		defer unsubscribe()
		return triggers.Run(gctx, eng.Current(), updates)
	})
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				logger.Info("SIGHUP: reloading")
				eng.Trigger()
			}
		}
	})
	if keys.Len() == 0 {
		logger.Warn("no API keys configured: the API is open to anyone who can reach " + ln.Addr().String() + " (loopback only unless --insecure)")
	}
	logger.Info("serving", "addr", "http://"+ln.Addr().String(), "console", "http://"+ln.Addr().String()+"/", "dir", cfg.dir, "db", db.Dialect(), "api_keys", keys.Len(),
		"generation", eng.Current().Generation(), "agents", len(eng.Current().Agents()), "teams", len(eng.Current().Teams()),
		"startup", time.Since(started).Round(time.Microsecond))
	err = g.Wait()
	logger.Info("stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// newRunService builds the run service every run goes through, with tracing
// (when rec is not nil) and metrics (when m is not nil) observing its runs.
// drain is how long in-flight runs may finish at shutdown; lease is the
// store's replica lease, which paces the heartbeat (a third of it, so two
// missed beats are tolerated) and the recovery sweep (two leases, the
// defaults' 5s and 30s for the default 15s lease); 0 keeps the defaults.
// keyTTL is how long idempotency keys replay their runs.
// more are further observers (the learner, which queues distillations).
func newRunService(eng *engine.Engine, db *store.DB, requeue session.Requeuer, announce session.Announcer, tr *telemetry.Tracer, m *telemetry.Metrics, drain, lease, keyTTL time.Duration, logger *slog.Logger, summaries session.SummaryQueue, memories session.Memories, runFiles files.Store, more ...session.Observer) *session.Service {
	var observers []session.Observer
	if tr != nil {
		observers = append(observers, tr)
	}
	if m != nil {
		observers = append(observers, m)
	}
	observers = append(observers, more...)
	// Cancels: a cancel or session deletion that lands on another replica
	// of the same database reaches the runs executing on this one.
	// Liveness: this replica's heartbeat, and recovery of the runs of
	// replicas that died while this one serves.
	return session.New(session.Options{Targets: eng, Store: db, Cancels: db, Events: db, Liveness: db, Requeue: requeue, Announcer: announce, Summaries: summaries, Memories: memories, Files: runFiles, Observers: observers, DrainTimeout: drain,
		HeartbeatInterval: lease / 3, RecoverInterval: 2 * lease, IdempotencyTTL: keyTTL, Logger: logger.With("component", "runs")})
}

// newTracer returns the tracing of runs recorded by rec (nil when tracing
// is off), whose continued and resumed workflow runs link to their earlier
// execution's trace, read from earlier.
func newTracer(rec *telemetry.Recorder, earlier telemetry.Reader, exp *otlp.Exporter, content telemetry.ContentPolicy) *telemetry.Tracer {
	if rec == nil && exp == nil {
		return nil
	}
	t := telemetry.NewTracer(rec).RecordContent(content)
	if earlier != nil {
		t.LinkEarlier(earlier)
	}
	if exp != nil {
		t.Export(exp)
	}
	return t
}

// openOTLP returns the OTLP exporter --otlp-endpoint or the standard
// OTEL_EXPORTER_OTLP_* variables ask for, or nil.
func openOTLP(ctx context.Context, cfg *serveConfig, getenv env, logger *slog.Logger) (*otlp.Exporter, error) {
	std := func(k string) string { v, _ := getenv(k); return v }
	if cfg.otlpEndpoint == "" && !otlp.Enabled(std) {
		return nil, nil
	}
	log := logger.With("component", "otlp")
	exp, err := otlp.New(ctx, otlp.Options{Endpoint: cfg.otlpEndpoint, Protocol: cfg.otlpProtocol, Getenv: std, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	log.Info("exporting spans over OTLP", "endpoint", cfg.otlpEndpoint)
	return exp, nil
}

// wireMetrics lets the Prometheus metrics read, at scrape time, the state
// the server's parts already know: reloads, the span queue, ingestion and
// the job engine's queues.
func wireMetrics(m *telemetry.Metrics, eng *engine.Engine, rec *telemetry.Recorder, k *kb.Service, q *jobs.Client) {
	m.SetReloadSource(func() (bool, time.Time, time.Duration, uint64) {
		r := eng.LastReload()
		if r == nil {
			return false, time.Time{}, 0, eng.Current().Generation()
		}
		return r.Success(), r.Time, r.Duration, eng.Current().Generation()
	})
	if rec != nil {
		m.SetSpanQueueSource(func() (int, uint64) { q, d, _ := rec.Stats(); return q, d })
	}
	m.SetIngestionSource(func() map[string]int {
		// Every state is reported, 0 included, so a series never vanishes.
		out := map[string]int{knowledge.StatusProcessing: 0, knowledge.StatusCompleted: 0, knowledge.StatusFailed: 0}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		counts, err := k.Counts(ctx)
		if err != nil {
			return nil // the gauges are left out of this scrape
		}
		for _, byStatus := range counts {
			for st, n := range byStatus {
				out[st] += n
			}
		}
		return out
	})
	m.SetQueueSource(queueMetrics(q))
}

// queueMetrics reads the job engine's queues for a scrape: one grouped
// count over the job table, bounded in time so a slow database cannot hold
// the scrape (its gauges are then left out, the counters kept).
func queueMetrics(c *jobs.Client) func() telemetry.QueueMetrics {
	return func() telemetry.QueueMetrics {
		cs := c.Counters()
		out := telemetry.QueueMetrics{FailedAttempts: cs.FailedAttempts, LeaseExpired: cs.LeaseExpired, Rescued: cs.Rescued, Orphaned: cs.Orphaned}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stats, err := c.Stats(ctx)
		if err != nil {
			return out
		}
		for _, q := range stats {
			out.Queues = append(out.Queues, telemetry.QueueGauges{Queue: q.Queue, Depth: q.Counts.Waiting(), Running: q.Counts.Running,
				Discarded: q.Counts.Discarded, OldestAvailable: q.OldestAvailable})
		}
		return out
	}
}

// tracing is where spans go and are read from.
type tracing struct {
	recorder *telemetry.Recorder // nil when tracing is off
	reader   telemetry.Reader    // nil when tracing is off
	// retain deletes expired traces until its context ends; nil when the
	// sink expires them itself (ClickHouse) or keeps them forever.
	retain func(context.Context) error
	close  func()
}

// spans is where the spec editor records its writes' spans: the recorder,
// or nothing when tracing is off (a nil *Recorder in an interface would
// not be nil).
func (t *tracing) spans() editor.Spans {
	if t.recorder == nil {
		return nil
	}
	return t.recorder
}

// traces is what the API reads traces from: the sink, plus the spans the
// recorder has not written yet, so a run's trace is readable when its final
// event is sent; nil when tracing is off.
func (t *tracing) traces() telemetry.Reader {
	if t.reader == nil {
		return nil
	}
	return telemetry.PendingReader{Reader: t.reader, Recorder: t.recorder}
}

// openTelemetry selects the trace sink: "sql" (the store's database, the
// default), "clickhouse://host:9000/db" or "off". ttl is how long the sql
// sink keeps traces (zero: forever); ClickHouse takes ttl_days in its URL.
//
// On SQLite, spans go to a sibling file (troupe-traces.db next to troupe.db):
// SQLite has one writer per file, and span batches must never make run writes
// queue behind them. PostgreSQL takes concurrent writers and keeps one database.
func openTelemetry(ctx context.Context, spec, dsn string, db *store.DB, ttl time.Duration, logger *slog.Logger) (*tracing, error) {
	log := logger.With("component", "telemetry")
	switch {
	case spec == "off":
		return &tracing{close: func() {}}, nil
	case spec == "sql" || spec == "":
		tdb, closeDB := db, func() {}
		if db.Dialect() == store.DialectSQLite && dsn != ":memory:" {
			path := strings.TrimSuffix(dsn, filepath.Ext(dsn)) + "-traces" + filepath.Ext(dsn)
			var err error
			if tdb, err = store.Open(ctx, path, store.Options{Logger: log}); err != nil {
				return nil, fmt.Errorf("opening the trace database: %w", err)
			}
			closeDB = func() { _ = tdb.Close() }
		}
		t := tdb.Traces()
		tr := &tracing{recorder: telemetry.NewRecorder(telemetry.RecorderOptions{Sink: t, Logger: log}), reader: t, close: closeDB}
		if ttl > 0 {
			tr.retain = func(ctx context.Context) error { return t.Retain(ctx, store.TraceRetention{TTL: ttl}) }
		}
		return tr, nil
	case strings.HasPrefix(spec, "clickhouse://"):
		opts, err := clickhouse.ParseDSN(spec)
		if err != nil {
			return nil, fmt.Errorf("TROUPE_TRACES: %w", err)
		}
		opts.Logger = log
		// A ClickHouse server that is down at start-up must not keep Troupe
		// from serving: spans are dropped (and counted) until it answers.
		ch, err := clickhouse.OpenLazy(opts)
		if err != nil {
			return nil, fmt.Errorf("TROUPE_TRACES: %w", err)
		}
		if err := ch.Connect(ctx); err != nil {
			log.Warn("ClickHouse for traces is unreachable; serving anyway, dropping spans and retrying in the background", "err", err)
		}
		return &tracing{recorder: telemetry.NewRecorder(telemetry.RecorderOptions{Sink: ch, Logger: log}), reader: ch, close: func() { _ = ch.Close() }}, nil
	}
	return nil, fmt.Errorf("TROUPE_TRACES %q: use sql, clickhouse://host:9000/db or off", spec)
}

// followKnowledge configures the knowledge service and the Kafka consumers
// with every new snapshot's knowledge bases, so a saved YAML file changes
// ingestion and search too. The service goes first: a consumer's documents
// need their base configured.
func followKnowledge(ctx context.Context, eng *engine.Engine, kbs *kb.Service, streams *kafka.Manager) error {
	updates, unsubscribe := eng.Subscribe()
	defer unsubscribe()
	kbs.Configure(ctx, eng.Current().Knowledge())
	streams.Configure(eng.Current().Knowledge())
	for {
		select {
		case <-ctx.Done():
			return nil
		case snap := <-updates:
			kbs.Configure(ctx, snap.Knowledge())
			streams.Configure(snap.Knowledge())
		}
	}
}

// isLoopback reports whether addr listens only on a loopback interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readRootsFlag defines --read-roots: folders besides the spec folder that
// spec files (by symlink) and knowledge sources may be read from. Anything
// else outside the spec folder is refused, so that whoever can write a spec
// cannot read the host's files through the server.
func readRootsFlag(fs *flag.FlagSet, getenv env, roots *[]string) {
	*roots = filepath.SplitList(envOr(getenv, "TROUPE_READ_ROOTS", ""))
	fs.Func("read-roots", "folders, separated by "+string(filepath.ListSeparator)+", that spec symlinks and knowledge sources may read besides the spec folder (env TROUPE_READ_ROOTS)", func(v string) error {
		*roots = filepath.SplitList(v)
		return nil
	})
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func envOr(getenv env, key, def string) string {
	if v, ok := getenv(key); ok && v != "" {
		return v
	}
	return def
}
