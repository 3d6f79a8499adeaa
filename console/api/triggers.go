package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/trigger"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// Triggers is what the API needs from the trigger service: "run now".
type Triggers interface {
	RunNow(ctx context.Context, name string) (*session.Run, error)
}

var _ Triggers = (*trigger.Service)(nil)

// Fires lists a trigger's last firings (store.DB).
type Fires interface {
	TriggerFires(ctx context.Context, trigger string, limit int) ([]store.TriggerFire, error)
}

var _ Fires = (*store.DB)(nil)

// LastFires is how many of a trigger's firings the API and the console
// show.
const LastFires = 10

// TriggerTarget is what a trigger runs.
type TriggerTarget struct {
	Kind string `json:"kind"` // agent, team or workflow
	Name string `json:"name"`
}

// TriggerSchedule is a trigger's schedule.
type TriggerSchedule struct {
	Cron     string `json:"cron,omitempty"`
	Every    string `json:"every,omitempty"`
	Timezone string `json:"timezone"`
	CatchUp  string `json:"catch_up"`
}

// TriggerWebhook is a trigger's webhook; its secret is never shown.
type TriggerWebhook struct {
	Path            string `json:"path"`
	URL             string `json:"url"` // the route to call, /hooks/{path}
	SignatureHeader string `json:"signature_header"`
}

// TriggerFire is one firing and the run it started.
type TriggerFire struct {
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id,omitempty"`
	// Source says how it fired: schedule, webhook or manual (run now).
	Source string `json:"source"`
	// Tick is the schedule's tick it fired for (the call's time for
	// webhooks and run now).
	Tick    time.Time `json:"tick"`
	FiredAt time.Time `json:"fired_at"`
	// Status is the run's status now; empty once its session was deleted.
	Status string `json:"status"`
}

// Trigger is a serving trigger with its next fire time and last firings.
type Trigger struct {
	Name        string           `json:"name"`
	Description string           `json:"description"`
	Target      TriggerTarget    `json:"target"`
	Schedule    *TriggerSchedule `json:"schedule,omitempty"`
	Webhook     *TriggerWebhook  `json:"webhook,omitempty"`
	// NextFireAt is the schedule's next tick; absent for webhooks.
	NextFireAt *time.Time `json:"next_fire_at,omitempty"`
	// LastFires are the last firings, newest first.
	LastFires []TriggerFire `json:"last_fires"`
}

type fireResponse struct {
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id"`
	Trigger   string `json:"trigger"`
	Status    string `json:"status"`
}

// triggerRoutes document the trigger routes.
var triggerRoutes = []Route{
	{Method: "get", Path: "/triggers", Tag: "Triggers", Summary: "List triggers",
		Desc: "Every serving trigger: its target, its schedule (cron or interval, time zone, catch-up policy) or webhook (path and signature header, never the secret), its next fire time and its last firings with their runs' status, newest first.",
		Resp: []Trigger{}},
	{Method: "get", Path: "/triggers/{name}", Tag: "Triggers", Summary: "Get a trigger",
		Params: []Param{PathParam("name", "Trigger name")}, Resp: Trigger{}, Errors: map[int]string{404: "No serving trigger has this name"}},
	{Method: "post", Path: "/triggers/{name}/fire", Tag: "Triggers", Summary: "Run a trigger now",
		Desc:   "Starts a background run of the trigger's target as a firing would, recorded as a manual firing (it neither moves the schedule's ticks nor counts for its catch-up). The run gets the trigger's message or input. Follow it with GET /agents/{agent_id}/runs/{run_id} (or /teams/...). Requires admin.",
		Params: []Param{PathParam("name", "Trigger name")}, Status: http.StatusAccepted, Resp: fireResponse{},
		Errors: map[int]string{404: "No serving trigger has this name", 429: "The background queue is full; retry later"}},
}

// TriggerList returns snap's triggers with their next fire time after now
// and their last firings (the API's and the console's).
func TriggerList(ctx context.Context, snap *engine.Snapshot, fires Fires, now time.Time) ([]Trigger, error) {
	out := []Trigger{}
	for _, t := range trigger.Triggers(snap) {
		v, err := triggerView(ctx, t, fires, now)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func triggerView(ctx context.Context, t *spec.Trigger, fires Fires, now time.Time) (Trigger, error) {
	k := t.Target.Key()
	out := Trigger{Name: t.Name, Description: t.Description, Target: TriggerTarget{Kind: k.Kind.Lower(), Name: k.Name}, LastFires: []TriggerFire{}}
	if s := t.Schedule; s != nil {
		out.Schedule = &TriggerSchedule{Cron: s.Cron, Timezone: s.Timezone, CatchUp: s.CatchUp}
		if s.Every > 0 {
			out.Schedule.Every = s.Every.String()
		}
	}
	if w := t.Webhook; w != nil {
		out.Webhook = &TriggerWebhook{Path: w.Path, URL: "/hooks/" + w.Path, SignatureHeader: w.SignatureHeader}
	}
	if next, ok := trigger.Next(t, now); ok {
		next = next.UTC()
		out.NextFireAt = &next
	}
	fs, err := fires.TriggerFires(ctx, t.Name, LastFires)
	if err != nil {
		return Trigger{}, err
	}
	for _, f := range fs {
		out.LastFires = append(out.LastFires, TriggerFire{RunID: f.RunID, SessionID: f.SessionID, Source: f.Source,
			Tick: f.ScheduledAt.UTC(), FiredAt: f.FiredAt.UTC(), Status: f.Status})
	}
	return out, nil
}

// TriggerByName returns snap's trigger name as TriggerList shows it; an
// unknown name is a 404.
func TriggerByName(ctx context.Context, snap *engine.Snapshot, fires Fires, name string, now time.Time) (Trigger, error) {
	t, ok := trigger.Lookup(snap, name)
	if !ok {
		return Trigger{}, Errorf(http.StatusNotFound, "no trigger named %q is serving: GET /triggers lists them", name)
	}
	return triggerView(ctx, t, fires, now)
}

func (h *Handler) listTriggers(c *gin.Context) error {
	out, err := TriggerList(c.Request.Context(), h.opts.Engine.Current(), h.opts.Store, time.Now())
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (h *Handler) getTrigger(c *gin.Context) error {
	out, err := TriggerByName(c.Request.Context(), h.opts.Engine.Current(), h.opts.Store, c.Param("name"), time.Now())
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (h *Handler) fireTrigger(c *gin.Context) error {
	r, err := h.opts.Triggers.RunNow(c.Request.Context(), c.Param("name"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, fireResponse{RunID: r.ID, SessionID: r.SessionID, Trigger: r.Trigger, Status: string(r.Status)})
	return nil
}

// triggerStatus classifies the trigger service's refusals for Status.
func triggerStatus(err error) (int, string, bool) {
	switch {
	case errors.Is(err, trigger.ErrNotFound):
		return http.StatusNotFound, err.Error() + ": GET /triggers lists the serving triggers", true
	case errors.Is(err, trigger.ErrSignature):
		return http.StatusUnauthorized, err.Error(), true
	}
	return 0, "", false
}
