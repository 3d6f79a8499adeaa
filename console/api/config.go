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

// getConfig answers GET /config: what this server serves and the state of the
// spec folder, in AgentOS's shape plus Troupe's reload status.
func (h *Handler) getConfig(c *gin.Context) error {
	snap := h.opts.Engine.Current()
	agents := []gin.H{}
	for _, a := range snap.Agents() {
		agents = append(agents, gin.H{"id": a.Name(), "name": a.Name(), "description": a.Spec.Description, "db_id": h.opts.DBID})
	}
	teams := []gin.H{}
	for _, t := range snap.Teams() {
		teams = append(teams, gin.H{"id": t.Name(), "name": t.Name(), "description": t.Spec.Description, "db_id": h.opts.DBID, "mode": t.Spec.Mode})
	}
	var objects []objectStatus
	for _, o := range snap.Objects() {
		objects = append(objects, objectStatus{Kind: string(o.Key.Kind), Name: o.Key.Name, Status: string(o.Status), File: o.File, Generation: o.Generation, Diagnostics: toDiagnostics(o.Diagnostics)})
	}
	var files []gin.H
	for _, f := range snap.Files() {
		files = append(files, gin.H{"path": f.Path, "hash": f.Hash, "size": f.Size, "failed": f.Failed, "diagnostics": toDiagnostics(f.Diagnostics)})
	}
	c.JSON(http.StatusOK, gin.H{
		"os_id":            "troupe",
		"name":             "Troupe",
		"version":          h.opts.Version,
		"available_models": h.modelNames(snap),
		"os_database":      h.opts.DBID,
		"databases":        []string{h.opts.DBID},
		"database_dialect": h.opts.Store.Dialect(),
		"agents":           agents,
		"teams":            teams,
		"workflows":        []gin.H{},
		"interfaces":       []gin.H{{"type": "openai", "version": "v1", "route": "/v1"}},
		"spec_dirs":        h.opts.Engine.Dirs(),
		"reload":           h.reloadStatus(h.opts.Engine.LastReload(), snap),
		"objects":          objects,
		"files":            files,
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
