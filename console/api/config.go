package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
)

// health is the liveness probe: the process is up and serving HTTP. It does
// not touch the database, so that an orchestrator does not restart a healthy
// process because its database is briefly unavailable.
func (h *Handler) health(c *gin.Context) {
	c.JSON(http.StatusOK, healthResponse{Status: "ok", InstantiatedAt: &h.opts.Started})
}

// readyTimeout bounds the readiness query: a probe must answer quickly, and a
// database that takes longer than this to read one row cannot serve runs.
const readyTimeout = 2 * time.Second

// ready is the readiness probe: 200 when this replica can serve runs (the
// database answers a real query and the server is not shutting down), 503
// otherwise. Like /health it needs no key, so its body names the failing
// check but none of the database's details; those go to the log.
func (h *Handler) ready(c *gin.Context) {
	select {
	case <-h.opts.Closing:
		c.JSON(http.StatusServiceUnavailable, healthResponse{Status: "unavailable", Detail: "the server is shutting down"})
		return
	default:
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	if err := h.opts.Store.Ready(ctx); err != nil {
		h.log.Error("readiness check failed: the database does not answer", "err", err)
		c.JSON(http.StatusServiceUnavailable, healthResponse{Status: "unavailable", Detail: "the database is not answering; see the server log"})
		return
	}
	c.JSON(http.StatusOK, healthResponse{Status: "ok"})
}

type objectStatus struct {
	Kind        string           `json:"kind"`
	Name        string           `json:"name"`
	Status      string           `json:"status"`
	File        string           `json:"file"`
	Generation  uint64           `json:"generation"`
	Diagnostics []diagnosticJSON `json:"diagnostics"`
}

type diagnosticJSON struct {
	Severity string `json:"severity"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Path     string `json:"path"`
	Message  string `json:"message"`
	Text     string `json:"text"` // file:line:col: path: message
}

func toDiagnostics(ds spec.Diagnostics) []diagnosticJSON {
	out := make([]diagnosticJSON, len(ds))
	for i, d := range ds {
		out[i] = diagnosticJSON{Severity: d.Severity.String(), File: d.Pos.File, Line: d.Pos.Line, Col: d.Pos.Col, Path: d.Path, Message: d.Msg, Text: d.Error()}
	}
	return out
}

type reloadJSON struct {
	Generation  uint64           `json:"generation"`
	Version     string           `json:"version"`
	Time        time.Time        `json:"time"`
	DurationMS  float64          `json:"duration_ms"`
	Changed     bool             `json:"changed"`
	Success     bool             `json:"success"`
	Error       string           `json:"error,omitempty"`
	Counts      map[string]int   `json:"counts"`
	Errors      int              `json:"errors"`
	Warnings    int              `json:"warnings"`
	Diagnostics []diagnosticJSON `json:"diagnostics"`
}

func (h *Handler) reloadStatus(res *engine.ReloadResult, snap *engine.Snapshot) reloadJSON {
	out := reloadJSON{Generation: snap.Generation(), Version: snap.Version(), Counts: map[string]int{}, Diagnostics: toDiagnostics(snap.Diagnostics())}
	if res != nil {
		out.Time, out.DurationMS, out.Changed, out.Success = res.Time.UTC(), float64(res.Duration.Microseconds())/1000, res.Changed, res.Success()
		out.Errors, out.Warnings = res.Errors, res.Warnings
		if res.Err != nil {
			out.Error = res.Err.Error()
		}
		for st, n := range res.Counts {
			out.Counts[string(st)] = n
		}
	}
	return out
}

// configResponse is GET /config: AgentOS's shape plus Troupe's reload status
// and which replica answered.
type configResponse struct {
	OSID            string           `json:"os_id"`
	Name            string           `json:"name"`
	Version         string           `json:"version"`
	AvailableModels []string         `json:"available_models"`
	OSDatabase      string           `json:"os_database"`
	Databases       []string         `json:"databases"`
	DatabaseDialect string           `json:"database_dialect"`
	Agents          []configAgent    `json:"agents"`
	Teams           []configTeam     `json:"teams"`
	Workflows       []configWorkflow `json:"workflows"`
	Interfaces      []configIface    `json:"interfaces"`
	SpecDirs        []string         `json:"spec_dirs"`
	Reload          reloadJSON       `json:"reload"`
	Objects         []objectStatus   `json:"objects"`
	Files           []configFile     `json:"files"`
	// ReplicaID names the process that answered, so that an operator behind
	// a load balancer can tell replicas apart.
	ReplicaID string `json:"replica_id"`
	// SpecVersion is the version of the snapshot this replica serves;
	// replicas on the same spec folder agree on it once they have reloaded.
	SpecVersion string `json:"spec_version"`
}

func (configResponse) OpenAPIName() string { return "Config" }

type configAgent struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	DBID        string `json:"db_id"`
}

type configTeam struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	DBID        string `json:"db_id"`
	Mode        string `json:"mode"`
}

// configWorkflow is a workflow of /config, in AgentOS's shape plus its
// status (ok, or stale when an edit broke it and its last good version
// serves; broken workflows are not served and appear only in objects).
type configWorkflow struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	DBID        string `json:"db_id"`
	Status      string `json:"status"`
}

type configIface struct {
	Type    string `json:"type"`
	Version string `json:"version"`
	Route   string `json:"route"`
}

type configFile struct {
	Path        string           `json:"path"`
	Hash        string           `json:"hash"`
	Size        int              `json:"size"`
	Failed      bool             `json:"failed"`
	Diagnostics []diagnosticJSON `json:"diagnostics"`
}

// getConfig answers GET /config: what this server serves and the state of the
// spec folder, in AgentOS's shape plus Troupe's reload status.
func (h *Handler) getConfig(c *gin.Context) error {
	snap := h.opts.Engine.Current()
	agents := []configAgent{}
	for _, a := range snap.Agents() {
		agents = append(agents, configAgent{ID: a.Name(), Name: a.Name(), Description: a.Spec.Description, DBID: h.opts.DBID})
	}
	teams := []configTeam{}
	for _, t := range snap.Teams() {
		teams = append(teams, configTeam{ID: t.Name(), Name: t.Name(), Description: t.Spec.Description, DBID: h.opts.DBID, Mode: t.Spec.Mode})
	}
	workflows := []configWorkflow{}
	for _, w := range snap.Workflows() {
		workflows = append(workflows, configWorkflow{ID: w.Name(), Name: w.Name(), Description: w.Spec.Description, DBID: h.opts.DBID,
			Status: objectState(snap, spec.KindWorkflow, w.Name())})
	}
	var objects []objectStatus
	for _, o := range snap.Objects() {
		objects = append(objects, objectStatus{Kind: string(o.Key.Kind), Name: o.Key.Name, Status: string(o.Status), File: o.File, Generation: o.Generation, Diagnostics: toDiagnostics(o.Diagnostics)})
	}
	var files []configFile
	for _, f := range snap.Files() {
		files = append(files, configFile{Path: f.Path, Hash: f.Hash, Size: f.Size, Failed: f.Failed, Diagnostics: toDiagnostics(f.Diagnostics)})
	}
	c.JSON(http.StatusOK, configResponse{
		OSID:            "troupe",
		Name:            "Troupe",
		Version:         h.opts.Version,
		AvailableModels: h.modelNames(snap),
		OSDatabase:      h.opts.DBID,
		Databases:       []string{h.opts.DBID},
		DatabaseDialect: h.opts.Store.Dialect(),
		Agents:          agents,
		Teams:           teams,
		Workflows:       workflows,
		Interfaces:      []configIface{{Type: "openai", Version: "v1", Route: "/v1"}},
		SpecDirs:        h.opts.Engine.Dirs(),
		Reload:          h.reloadStatus(h.opts.Engine.LastReload(), snap),
		Objects:         objects,
		Files:           files,
		ReplicaID:       h.opts.ReplicaID,
		SpecVersion:     snap.Version(),
	})
	return nil
}

func (h *Handler) reload(c *gin.Context) error {
	res, err := h.opts.Engine.Reload(c.Request.Context())
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Msg: "reload did not complete: " + err.Error()}
	}
	status := http.StatusOK
	if !res.Success() {
		status = http.StatusUnprocessableEntity
	}
	c.JSON(status, h.reloadStatus(res, h.opts.Engine.Current()))
	return nil
}

func (h *Handler) modelNames(snap *engine.Snapshot) []string {
	var out []string
	for _, m := range h.models(snap) {
		out = append(out, m.Name)
	}
	return out
}

// models lists the distinct models agents and teams use.
func (h *Handler) models(snap *engine.Snapshot) []modelInfo {
	seen := map[string]bool{}
	var out []modelInfo
	add := func(r *engine.ModelRef) {
		if r == nil || seen[r.Ref] {
			return
		}
		seen[r.Ref] = true
		out = append(out, toModelInfo(r))
	}
	for _, a := range snap.Agents() {
		add(a.Model)
	}
	for _, t := range snap.Teams() {
		add(t.Model)
	}
	slices.SortFunc(out, func(a, b modelInfo) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

func toModelInfo(r *engine.ModelRef) modelInfo {
	return modelInfo{Name: r.Ref, Model: r.Model, Provider: r.Provider, Demo: r.Provider == spec.EchoModel}
}

func (h *Handler) listModels(c *gin.Context) error {
	models := h.models(h.opts.Engine.Current())
	if models == nil {
		models = []modelInfo{}
	}
	c.JSON(http.StatusOK, models)
	return nil
}
