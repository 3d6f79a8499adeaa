package telemetry

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/troupehq/troupe/engine/event"
)

// Label limits. Every label of the run metrics comes from a bounded set (the
// specs' agent, team, tool and model names) but some values reach us from
// outside, such as the model id a provider echoes back, so each label caps the
// distinct values it keeps and folds the rest into OtherLabel: a misbehaving
// model or tool cannot explode the number of series.
const (
	// MaxLabelValues is how many distinct values each capped label keeps.
	MaxLabelValues = 200
	// OtherLabel replaces the values of a label past MaxLabelValues.
	OtherLabel = "other"
	// UnknownLabel replaces an empty label value.
	UnknownLabel = "unknown"
	// maxLabelLen bounds one label value, in bytes.
	maxLabelLen = 128
)

// Histogram buckets, in seconds.
var (
	// LLM calls: tens of milliseconds for a cached or tiny answer, minutes for
	// a long generation.
	modelBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120}
	// Runs: a model call or several, with tools in between.
	runBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600}
	// Time to first token: mostly under a few seconds.
	ttftBuckets = []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60}
	// Tools: from in-process functions (microseconds) to HTTP calls and
	// member runs (seconds to minutes).
	toolBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
)

// Metrics are the server's Prometheus metrics, on a registry of their own (not
// the global one): run, model and tool metrics derived from run events (see
// Observe), the number of open event streams, and gauges read at scrape time
// from the engine's reload state, the span recorder and the ingestion queue.
// Labels never carry user or session ids. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	runs          *prometheus.CounterVec
	runDuration   *prometheus.HistogramVec
	modelDuration *prometheus.HistogramVec
	modelTokens   *prometheus.CounterVec
	ttft          *prometheus.HistogramVec
	toolDuration  *prometheus.HistogramVec
	toolErrors    *prometheus.CounterVec
	activeStreams prometheus.Gauge

	targets, tools, models, providers *labelCap

	sources *sourceCollector
}

// NewMetrics returns metrics registered on a new registry, with the Go runtime
// and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "troupe_runs_total",
			Help: "Runs of agents and teams that ended, by kind (agent or team), target (the agent or team name) and status (completed, error or cancelled). Team members' runs are not counted.",
		}, []string{"kind", "target", "status"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "troupe_run_duration_seconds",
			Help:    "Duration of the runs of agents and teams that ended, by kind, target and status. Team members' runs are not counted.",
			Buckets: runBuckets,
		}, []string{"kind", "target", "status"}),
		modelDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "troupe_model_request_duration_seconds",
			Help:    "Duration of completed model requests, team members' included, by provider and model.",
			Buckets: modelBuckets,
		}, []string{"provider", "model"}),
		modelTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "troupe_model_tokens_total",
			Help: "Tokens of completed model requests, by provider, model and direction (input or output).",
		}, []string{"provider", "model", "direction"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "troupe_model_time_to_first_token_seconds",
			Help:    "Time from the start of a streamed model request to its first content delta, by provider and model.",
			Buckets: ttftBuckets,
		}, []string{"provider", "model"}),
		toolDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "troupe_tool_call_duration_seconds",
			Help:    "Duration of tool calls that ended, failed ones included, by tool.",
			Buckets: toolBuckets,
		}, []string{"tool"}),
		toolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "troupe_tool_call_errors_total",
			Help: "Tool calls that failed, by tool.",
		}, []string{"tool"}),
		activeStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "troupe_active_streams",
			Help: "Event streams (SSE) currently open.",
		}),
		targets:   newLabelCap(MaxLabelValues),
		tools:     newLabelCap(MaxLabelValues),
		models:    newLabelCap(MaxLabelValues),
		providers: newLabelCap(MaxLabelValues),
		sources:   newSourceCollector(),
	}
	m.reg.MustRegister(
		m.runs, m.runDuration, m.modelDuration, m.modelTokens, m.ttft, m.toolDuration, m.toolErrors,
		m.activeStreams, m.sources,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the registry's metrics in the Prometheus exposition format
// (text unless the scraper negotiates another).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Observe records one run event. Feed it every event of every run, team
// members' included: runs are counted from the terminal events of depth 0
// (members' runs are part of their team's), model requests and tool calls at
// every depth. It is cheap and safe for concurrent use.
func (m *Metrics) Observe(e event.Event) {
	switch e.Type {
	case event.RunCompleted, event.RunError, event.RunCancelled:
		if e.Depth != 0 {
			return
		}
		kind, target := "agent", e.AgentID
		if e.TeamID != "" {
			kind, target = "team", e.TeamID
		}
		target = m.targets.value(target)
		status := runStatusLabel(e.Type)
		m.runs.WithLabelValues(kind, target, status).Inc()
		if e.Metrics != nil {
			m.runDuration.WithLabelValues(kind, target, status).Observe(e.Metrics.Duration.Seconds())
		}
	case event.ModelRequestCompleted:
		if e.Metrics == nil {
			return
		}
		provider, model := m.providers.value(e.Provider), m.models.value(e.Model)
		m.modelDuration.WithLabelValues(provider, model).Observe(e.Metrics.Duration.Seconds())
		m.modelTokens.WithLabelValues(provider, model, "input").Add(float64(max(e.Metrics.InputTokens, 0)))
		m.modelTokens.WithLabelValues(provider, model, "output").Add(float64(max(e.Metrics.OutputTokens, 0)))
		if e.Metrics.TimeToFirstToken > 0 {
			m.ttft.WithLabelValues(provider, model).Observe(e.Metrics.TimeToFirstToken.Seconds())
		}
	case event.ToolCallCompleted, event.ToolCallError:
		if e.Tool == nil {
			return
		}
		name := m.tools.value(e.Tool.Name)
		m.toolDuration.WithLabelValues(name).Observe(e.Tool.Duration.Seconds())
		// The error counter of every tool seen exists from its first call, so
		// that rates of errors over calls have both sides.
		errs := m.toolErrors.WithLabelValues(name)
		if e.Type == event.ToolCallError || e.Tool.Error {
			errs.Inc()
		}
	}
}

func runStatusLabel(t event.Type) string {
	switch t.Status() {
	case event.StatusError:
		return "error"
	case event.StatusCancelled:
		return "cancelled"
	case event.StatusPaused:
		return "paused"
	default:
		return "completed"
	}
}

// StreamOpened counts an event stream that opened; call StreamClosed when it
// closes.
func (m *Metrics) StreamOpened() { m.activeStreams.Inc() }

// StreamClosed counts an event stream that closed.
func (m *Metrics) StreamClosed() { m.activeStreams.Dec() }

// SetReloadSource sets the function that reports the last configuration reload
// attempt, read at every scrape: whether it succeeded, when it happened, how
// long it took and the generation of the configuration serving after it (the
// engine's LastReload: Success(), Time, Duration, Generation). A zero time
// means no reload happened yet. Nil removes the source and its series.
func (m *Metrics) SetReloadSource(f func() (success bool, at time.Time, duration time.Duration, generation uint64)) {
	if f == nil {
		m.sources.reload.Store(nil)
		return
	}
	m.sources.reload.Store(&f)
}

// SetSpanQueueSource sets the function that reports the span recorder's queue
// depth and the spans it dropped since it started, read at every scrape. Nil
// removes the source and its series.
func (m *Metrics) SetSpanQueueSource(f func() (depth int, dropped uint64)) {
	if f == nil {
		m.sources.spans.Store(nil)
		return
	}
	m.sources.spans.Store(&f)
}

// SetExportSource sets the function that reports the OTLP exporter's queue
// depth and the spans it dropped (queue full, or an export that failed:
// a collector that is down), read at every scrape. Nil removes the source
// and its series.
func (m *Metrics) SetExportSource(f func() (depth int, dropped uint64)) {
	if f == nil {
		m.sources.export.Store(nil)
		return
	}
	m.sources.export.Store(&f)
}

// SetIngestionSource sets the function that counts knowledge documents by
// state (a small, fixed set of states), read at every scrape. Nil removes the
// source and its series.
func (m *Metrics) SetIngestionSource(f func() map[string]int) {
	if f == nil {
		m.sources.ingestion.Store(nil)
		return
	}
	m.sources.ingestion.Store(&f)
}

// SetKafkaLagSource sets the function that reports, by knowledge base, the
// records of its Kafka topic this process's consumer has not processed yet
// (over the partitions it owns), read at every scrape. Nil removes the
// source and its series.
func (m *Metrics) SetKafkaLagSource(f func() map[string]int64) {
	if f == nil {
		m.sources.kafkaLag.Store(nil)
		return
	}
	m.sources.kafkaLag.Store(&f)
}

// QueueMetrics are the job engine's figures at a scrape: gauges per queue,
// over every replica on the database, and this process's counters.
type QueueMetrics struct {
	// Queues are nil when the database could not be read; the counters
	// are still reported.
	Queues []QueueGauges
	// FailedAttempts are attempts whose work failed, by job kind.
	FailedAttempts map[string]uint64
	// LeaseExpired are background runs ended ERROR because their worker
	// died and their job's lease expired.
	LeaseExpired uint64
	// Rescued are jobs found running at start and given back.
	Rescued uint64
	// Orphaned are background runs this process ended ERROR because no
	// job was left to start them.
	Orphaned uint64
}

// QueueGauges are one queue's jobs.
type QueueGauges struct {
	Queue string
	// Depth is the jobs waiting: available, scheduled, pending and
	// retryable.
	Depth, Running, Discarded int
	// OldestAvailable is how long the oldest available job has waited.
	OldestAvailable time.Duration
}

// SetQueueSource sets the function that reports the job engine's queues,
// read at every scrape (one grouped query: keep it cheap). Nil removes the
// source and its series.
func (m *Metrics) SetQueueSource(f func() QueueMetrics) {
	if f == nil {
		m.sources.queue.Store(nil)
		return
	}
	m.sources.queue.Store(&f)
}

// sourceCollector reads the gauges that other subsystems own when Prometheus
// scrapes.
type sourceCollector struct {
	reload    atomic.Pointer[func() (bool, time.Time, time.Duration, uint64)]
	spans     atomic.Pointer[func() (int, uint64)]
	export    atomic.Pointer[func() (int, uint64)]
	ingestion atomic.Pointer[func() map[string]int]
	queue     atomic.Pointer[func() QueueMetrics]
	kafkaLag  atomic.Pointer[func() map[string]int64]

	// lastSuccess is the time of the latest successful reload seen at a
	// scrape, in Unix nanoseconds (0: none yet), kept for when the latest
	// attempt failed.
	lastSuccess atomic.Int64

	reloadOK, reloadSuccessTime, reloadDuration, generation *prometheus.Desc
	spanQueue, spansDropped                                 *prometheus.Desc
	exportQueue, exportDropped                              *prometheus.Desc
	documents, lagDesc                                      *prometheus.Desc
	queueDepth, queueOldest, queueRunning, queueDiscarded   *prometheus.Desc
	jobsFailed, leaseExpired, jobsRescued, runsOrphaned     *prometheus.Desc
}

func newSourceCollector() *sourceCollector {
	return &sourceCollector{
		reloadOK: prometheus.NewDesc("troupe_config_last_reload_successful",
			"Whether the last configuration reload read the configuration (1) or failed (0).", nil, nil),
		reloadSuccessTime: prometheus.NewDesc("troupe_config_last_reload_success_timestamp_seconds",
			"Unix time of the last successful configuration reload.", nil, nil),
		reloadDuration: prometheus.NewDesc("troupe_config_reload_duration_seconds",
			"Duration of the last configuration reload.", nil, nil),
		generation: prometheus.NewDesc("troupe_config_generation",
			"Generation of the configuration serving requests; it grows with every change reloaded.", nil, nil),
		spanQueue: prometheus.NewDesc("troupe_trace_span_queue_depth",
			"Spans waiting in the recorder's queue to be written.", nil, nil),
		spansDropped: prometheus.NewDesc("troupe_trace_spans_dropped_total",
			"Spans the recorder dropped because its queue was full or a sink failed.", nil, nil),
		exportQueue: prometheus.NewDesc("troupe_otlp_span_queue_depth",
			"Spans waiting to be exported over OTLP.", nil, nil),
		exportDropped: prometheus.NewDesc("troupe_otlp_spans_dropped_total",
			"Spans the OTLP exporter dropped because its queue was full or an export failed (a collector that is down).", nil, nil),
		documents: prometheus.NewDesc("troupe_knowledge_documents",
			"Knowledge documents by ingestion state.", []string{"state"}, nil),
		lagDesc: prometheus.NewDesc("troupe_knowledge_kafka_lag",
			"Records of a knowledge base's Kafka topic not yet in its index, over the partitions this replica consumes (sum over replicas for the group's lag).", []string{"knowledge"}, nil),
		queueDepth: prometheus.NewDesc("troupe_jobs_queue_depth",
			"Jobs waiting in a queue of the job engine (available, scheduled, pending or retryable), over every replica on the database.", []string{"queue"}, nil),
		queueOldest: prometheus.NewDesc("troupe_jobs_oldest_available_age_seconds",
			"How long the oldest available job of a queue has waited to start (0 when none waits).", []string{"queue"}, nil),
		queueRunning: prometheus.NewDesc("troupe_jobs_running",
			"Jobs of a queue running, over every replica on the database.", []string{"queue"}, nil),
		queueDiscarded: prometheus.NewDesc("troupe_jobs_discarded",
			"Jobs of a queue that failed for good (discarded) and are still kept by the job engine.", []string{"queue"}, nil),
		jobsFailed: prometheus.NewDesc("troupe_jobs_failed_attempts_total",
			"Job attempts whose work failed in this process, by job kind.", []string{"kind"}, nil),
		leaseExpired: prometheus.NewDesc("troupe_jobs_lease_expiries_total",
			"Background runs this process ended ERROR because the process executing them died and their job's lease expired.", nil, nil),
		jobsRescued: prometheus.NewDesc("troupe_jobs_rescued_total",
			"Jobs found running when this process started, left by a process that died, and given back.", nil, nil),
		runsOrphaned: prometheus.NewDesc("troupe_jobs_orphaned_runs_total",
			"Background runs this process ended ERROR, never started, because their job was lost (a process died while queueing them, or the job failed first).", nil, nil),
	}
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.reloadOK, c.reloadSuccessTime, c.reloadDuration, c.generation, c.spanQueue, c.spansDropped, c.exportQueue, c.exportDropped, c.documents, c.lagDesc,
		c.queueDepth, c.queueOldest, c.queueRunning, c.queueDiscarded, c.jobsFailed, c.leaseExpired, c.jobsRescued, c.runsOrphaned} {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if f := c.reload.Load(); f != nil {
		ok, at, d, gen := (*f)()
		if !at.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.reloadOK, prometheus.GaugeValue, boolFloat(ok))
			ch <- prometheus.MustNewConstMetric(c.reloadDuration, prometheus.GaugeValue, d.Seconds())
			if ok {
				c.noteSuccess(at)
			}
		}
		if ns := c.lastSuccess.Load(); ns != 0 {
			ch <- prometheus.MustNewConstMetric(c.reloadSuccessTime, prometheus.GaugeValue, float64(ns)/1e9)
		}
		ch <- prometheus.MustNewConstMetric(c.generation, prometheus.GaugeValue, float64(gen))
	}
	if f := c.spans.Load(); f != nil {
		depth, dropped := (*f)()
		ch <- prometheus.MustNewConstMetric(c.spanQueue, prometheus.GaugeValue, float64(depth))
		ch <- prometheus.MustNewConstMetric(c.spansDropped, prometheus.CounterValue, float64(dropped))
	}
	if f := c.export.Load(); f != nil {
		depth, dropped := (*f)()
		ch <- prometheus.MustNewConstMetric(c.exportQueue, prometheus.GaugeValue, float64(depth))
		ch <- prometheus.MustNewConstMetric(c.exportDropped, prometheus.CounterValue, float64(dropped))
	}
	if f := c.ingestion.Load(); f != nil {
		seen := make(map[string]bool)
		for state, n := range (*f)() {
			state = cleanLabel(state)
			if seen[state] { // two states cleaned to the same value
				continue
			}
			seen[state] = true
			ch <- prometheus.MustNewConstMetric(c.documents, prometheus.GaugeValue, float64(n), state)
		}
	}
	if f := c.kafkaLag.Load(); f != nil {
		seen := make(map[string]bool)
		for name, n := range (*f)() {
			name = cleanLabel(name)
			if seen[name] {
				continue
			}
			seen[name] = true
			ch <- prometheus.MustNewConstMetric(c.lagDesc, prometheus.GaugeValue, float64(n), name)
		}
	}
	if f := c.queue.Load(); f != nil {
		c.collectQueue(ch, (*f)())
	}
}

func (c *sourceCollector) collectQueue(ch chan<- prometheus.Metric, q QueueMetrics) {
	seen := make(map[string]bool)
	for _, g := range q.Queues {
		name := cleanLabel(g.Queue)
		if seen[name] {
			continue
		}
		seen[name] = true
		ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, float64(g.Depth), name)
		ch <- prometheus.MustNewConstMetric(c.queueOldest, prometheus.GaugeValue, g.OldestAvailable.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(c.queueRunning, prometheus.GaugeValue, float64(g.Running), name)
		ch <- prometheus.MustNewConstMetric(c.queueDiscarded, prometheus.GaugeValue, float64(g.Discarded), name)
	}
	clear(seen)
	for kind, n := range q.FailedAttempts {
		kind = cleanLabel(kind)
		if seen[kind] {
			continue
		}
		seen[kind] = true
		ch <- prometheus.MustNewConstMetric(c.jobsFailed, prometheus.CounterValue, float64(n), kind)
	}
	ch <- prometheus.MustNewConstMetric(c.leaseExpired, prometheus.CounterValue, float64(q.LeaseExpired))
	ch <- prometheus.MustNewConstMetric(c.jobsRescued, prometheus.CounterValue, float64(q.Rescued))
	ch <- prometheus.MustNewConstMetric(c.runsOrphaned, prometheus.CounterValue, float64(q.Orphaned))
}

// noteSuccess keeps the latest successful reload time; concurrent scrapes
// never move it backwards.
func (c *sourceCollector) noteSuccess(at time.Time) {
	ns := at.UnixNano()
	for {
		old := c.lastSuccess.Load()
		if ns <= old || c.lastSuccess.CompareAndSwap(old, ns) {
			return
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// labelCap bounds the distinct values of a label: the first max values pass
// through, later new ones become OtherLabel.
type labelCap struct {
	max  int
	mu   sync.RWMutex
	seen map[string]struct{}
}

func newLabelCap(limit int) *labelCap {
	return &labelCap{max: limit, seen: make(map[string]struct{})}
}

func (c *labelCap) value(v string) string {
	v = cleanLabel(v)
	c.mu.RLock()
	_, ok := c.seen[v]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[v]; ok {
		return v
	}
	if len(c.seen) >= c.max {
		return OtherLabel
	}
	c.seen[v] = struct{}{}
	return v
}

// cleanLabel makes v a label value Prometheus accepts and keeps short: valid
// UTF-8, at most maxLabelLen bytes, UnknownLabel when empty.
func cleanLabel(v string) string {
	if v == "" {
		return UnknownLabel
	}
	if len(v) <= maxLabelLen && utf8.ValidString(v) {
		return v
	}
	v = strings.ToValidUTF8(v, "\uFFFD")
	if len(v) > maxLabelLen {
		cut := maxLabelLen
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut]
	}
	return v
}
