package console

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
)

func (s *Server) toAgent(snap *engine.Snapshot, a *engine.Agent) agentResponse {
	out := agentResponse{
		ID: a.Name(), Name: a.Name(), Description: a.Spec.Description, DBID: s.opts.DBID,
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

func (s *Server) toTeam(snap *engine.Snapshot, t *engine.Team) teamResponse {
	out := teamResponse{
		ID: t.Name(), Name: t.Name(), Description: t.Spec.Description, DBID: s.opts.DBID,
		Model: toModelInfo(t.Model), Mode: t.Spec.Mode, Members: []memberRef{}, Status: string(engine.StatusOK), SpecVersion: snap.Version(),
	}
	if o, ok := snap.Object(spec.Key{Kind: spec.KindTeam, Name: t.Name()}); ok {
		out.Status = string(o.Status)
	}
	for _, m := range t.Members {
		typ := "agent"
		if m.Team != nil {
			typ = "team"
		}
		out.Members = append(out.Members, memberRef{ID: m.Name(), Name: m.Name(), Type: typ})
	}
	return out
}

func (s *Server) listAgents(c *gin.Context) {
	snap := s.opts.Engine.Current()
	out := []agentResponse{}
	for _, a := range snap.Agents() {
		out = append(out, s.toAgent(snap, a))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getAgent(c *gin.Context) {
	snap := s.opts.Engine.Current()
	a, ok := snap.Agent(c.Param("id"))
	if !ok {
		s.notServing(c, snap, spec.KindAgent, c.Param("id"))
		return
	}
	c.JSON(http.StatusOK, s.toAgent(snap, a))
}

func (s *Server) listTeams(c *gin.Context) {
	snap := s.opts.Engine.Current()
	out := []teamResponse{}
	for _, t := range snap.Teams() {
		out = append(out, s.toTeam(snap, t))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getTeam(c *gin.Context) {
	snap := s.opts.Engine.Current()
	t, ok := snap.Team(c.Param("id"))
	if !ok {
		s.notServing(c, snap, spec.KindTeam, c.Param("id"))
		return
	}
	c.JSON(http.StatusOK, s.toTeam(snap, t))
}

// notServing answers for a target the snapshot does not serve: 404, with the
// diagnostics when the object exists but is broken.
func (s *Server) notServing(c *gin.Context, snap *engine.Snapshot, kind spec.Kind, name string) {
	if o, ok := snap.Object(spec.Key{Kind: kind, Name: name}); ok && !o.Serving() {
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"detail": kind.Lower() + " " + name + " is broken: fix its spec file", "diagnostics": toDiagnostics(o.Diagnostics)})
		return
	}
	abort(c, http.StatusNotFound, kind.Lower()+" "+name+" not found")
}
