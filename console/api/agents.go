package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
)

func (h *Handler) toAgent(snap *engine.Snapshot, a *engine.Agent) agentResponse {
	out := agentResponse{
		ID: a.Name(), Name: a.Name(), Description: a.Spec.Description, DBID: h.opts.DBID,
		Model: toModelInfo(a.Model), Instructions: a.Spec.Instructions, Tools: []toolInfo{}, Knowledge: []string{},
		Status: string(engine.StatusOK), SpecVersion: snap.Version(),
	}
	if o, ok := snap.Object(spec.Key{Kind: spec.KindAgent, Name: a.Name()}); ok {
		out.Status = string(o.Status)
	}
	for _, t := range a.Tools {
		ti := toolInfo{Name: t.Name, Type: "builtin"}
		if t.Spec != nil {
			ti.Type, ti.Description = t.Spec.Type, t.Spec.Description
		}
		out.Tools = append(out.Tools, ti)
	}
	for _, k := range a.Knowledge {
		out.Knowledge = append(out.Knowledge, k.Name)
	}
	return out
}

func (h *Handler) toTeam(snap *engine.Snapshot, t *engine.Team) teamResponse {
	out := teamResponse{
		ID: t.Name(), Name: t.Name(), Description: t.Spec.Description, DBID: h.opts.DBID,
		Model: toModelInfo(t.Model), Mode: t.Spec.Mode, Members: []memberRef{}, Status: string(engine.StatusOK), SpecVersion: snap.Version(),
	}
	if o, ok := snap.Object(spec.Key{Kind: spec.KindTeam, Name: t.Name()}); ok {
		out.Status = string(o.Status)
	}
	for _, m := range t.Members {
		out.Members = append(out.Members, memberRef{ID: m.Name(), Name: m.Name(), Type: m.Kind()})
	}
	return out
}

func (h *Handler) listAgents(c *gin.Context) error {
	snap := h.opts.Engine.Current()
	out := []agentResponse{}
	for _, a := range snap.Agents() {
		out = append(out, h.toAgent(snap, a))
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (h *Handler) getAgent(c *gin.Context) error {
	snap := h.opts.Engine.Current()
	a, ok := snap.Agent(c.Param("id"))
	if !ok {
		return notServing(snap, spec.KindAgent, c.Param("id"))
	}
	c.JSON(http.StatusOK, h.toAgent(snap, a))
	return nil
}

func (h *Handler) listTeams(c *gin.Context) error {
	snap := h.opts.Engine.Current()
	out := []teamResponse{}
	for _, t := range snap.Teams() {
		out = append(out, h.toTeam(snap, t))
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (h *Handler) getTeam(c *gin.Context) error {
	snap := h.opts.Engine.Current()
	t, ok := snap.Team(c.Param("id"))
	if !ok {
		return notServing(snap, spec.KindTeam, c.Param("id"))
	}
	c.JSON(http.StatusOK, h.toTeam(snap, t))
	return nil
}

// notServing is the error for a target the snapshot does not serve: 404,
// with the diagnostics when the object exists but is broken.
func notServing(snap *engine.Snapshot, kind spec.Kind, name string) error {
	if o, ok := snap.Object(spec.Key{Kind: kind, Name: name}); ok && !o.Serving() {
		return &Error{Status: http.StatusNotFound, Msg: kind.Lower() + " " + name + " is broken: fix its spec file", Diagnostics: toDiagnostics(o.Diagnostics)}
	}
	return &Error{Status: http.StatusNotFound, Msg: kind.Lower() + " " + name + " not found"}
}
