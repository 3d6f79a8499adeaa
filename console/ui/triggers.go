package ui

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/trigger"
)

// Triggers is what the console needs from the trigger service: "run now".
type Triggers interface {
	RunNow(ctx context.Context, name string) (*session.Run, error)
}

var _ Triggers = (*trigger.Service)(nil)

// triggersPage lists the serving triggers with their next fire time and
// last runs, as GET /triggers does.
func (h *Handler) triggersPage(c *gin.Context) {
	now := time.Now()
	list, err := api.TriggerList(c.Request.Context(), h.opts.Engine.Current(), h.opts.Store, now)
	if err != nil {
		h.fail(c, "the triggers", err)
		return
	}
	p := view.Triggers{Now: now, CanFire: h.opts.Triggers != nil && auth.Of(c).Has(auth.ScopeAdmin)}
	if name, run := c.Query("fired"), c.Query("run"); name != "" && run != "" {
		p.Flash = "Trigger " + name + " started run " + run + " in the background; it shows below as a manual firing."
	}
	for _, t := range list {
		r := view.TriggerRow{Name: t.Name, Description: t.Description, TargetKind: t.Target.Kind, TargetName: t.Target.Name, Next: t.NextFireAt}
		switch {
		case t.Schedule != nil && t.Schedule.Cron != "":
			r.Kind, r.When = "cron", t.Schedule.Cron+" ("+t.Schedule.Timezone+")"
		case t.Schedule != nil:
			r.Kind, r.When = "every", "every "+t.Schedule.Every
		case t.Webhook != nil:
			r.Kind, r.When = "webhook", "POST "+t.Webhook.URL
		}
		if t.Schedule != nil {
			r.CatchUp = t.Schedule.CatchUp
		}
		for _, f := range t.LastFires {
			r.Fires = append(r.Fires, view.TriggerFire{RunID: f.RunID, SessionID: f.SessionID, Source: f.Source, FiredAt: f.FiredAt, Status: f.Status})
		}
		p.Rows = append(p.Rows, r)
	}
	h.render(c, http.StatusOK, view.TriggersPage(h.frame(c, "Triggers", "triggers"), p))
}

// fireFromConsole runs a trigger now and goes back to the list, which says
// which run it started.
func (h *Handler) fireFromConsole(c *gin.Context) {
	name := c.Param("name")
	r, err := h.opts.Triggers.RunNow(c.Request.Context(), name)
	if err != nil {
		h.fail(c, "the trigger", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/triggers?fired="+url.QueryEscape(name)+"&run="+url.QueryEscape(r.ID))
}
