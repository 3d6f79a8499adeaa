package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// BudgetCounters lists a budget's counters (store.DB).
type BudgetCounters interface {
	BudgetCounters(ctx context.Context, name, window, scope string, limit int) ([]store.BudgetCounter, error)
}

var _ BudgetCounters = (*store.DB)(nil)

// MaxBudgetCounters bounds the counters listed per budget (a per-run budget
// has one per run).
const MaxBudgetCounters = 500

// BudgetLimits are a budget's caps; zero means none.
type BudgetLimits struct {
	Cost      model.Cost `json:"cost"` // USD
	Tokens    int64      `json:"tokens"`
	ToolCalls int64      `json:"tool_calls"`
	WallTime  float64    `json:"wall_time"` // seconds
}

// BudgetUsage is one counter's consumption.
type BudgetUsage struct {
	// Scope is whose counter it is: user:alice, agent:support, run:…,
	// session:…, or empty for a shared pot (per: all).
	Scope     string     `json:"scope"`
	Window    string     `json:"window,omitempty"`
	Cost      model.Cost `json:"cost"` // USD
	Tokens    int64      `json:"tokens"`
	ToolCalls int64      `json:"tool_calls"`
	WallTime  float64    `json:"wall_time"` // seconds
}

// Budget is a serving budget with its consumption in the current window.
type Budget struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Per         string `json:"per"`
	Period      string `json:"period"`
	TimeZone    string `json:"time_zone"`
	// Window is the current day or month (empty for period none and for
	// run and session budgets, whose counters are listed whatever their
	// window).
	Window string        `json:"window,omitempty"`
	Limits BudgetLimits  `json:"limits"`
	Usage  []BudgetUsage `json:"usage"`
}

var budgetRoutes = []Route{
	{Method: "get", Path: "/budgets", Tag: "Budgets", Summary: "List budgets and their consumption",
		Desc: "Every serving budget with its limits and, for the current day or month, each counter's cost (USD), tokens, tool calls and wall time (seconds). A key bound to a user sees only that user's counters.",
		Resp: []Budget{}},
	{Method: "get", Path: "/budgets/{name}", Tag: "Budgets", Summary: "Get a budget and its consumption",
		Params: []Param{PathParam("name", "Budget name")}, Resp: Budget{}, Errors: map[int]string{404: "No serving budget has this name"}},
}

// servingBudgets returns snap's serving Budget documents.
func servingBudgets(snap *engine.Snapshot) []*spec.Budget {
	var out []*spec.Budget
	for _, o := range snap.Objects() {
		if b, ok := o.Doc.(*spec.Budget); ok && o.Key.Kind == spec.KindBudget {
			out = append(out, b)
		}
	}
	return out
}

// BudgetView is a serving budget with its counters in now's window, what
// GET /budgets/{name} answers and the console's Budgets page shows. A
// non-empty user (a user-bound key's) sees only that user's counters, of
// per-user budgets only.
func BudgetView(ctx context.Context, counters BudgetCounters, b *spec.Budget, user string, now time.Time) (Budget, error) {
	cb := budget.Compile(b)
	window := cb.Key(budget.Subject{}, now).Window
	out := Budget{Name: b.Name, Description: b.Description, Per: b.Per, Period: b.Period, TimeZone: b.TimeZone, Window: window,
		Limits: BudgetLimits{Cost: cb.Limits.Cost, Tokens: cb.Limits.Tokens, ToolCalls: cb.Limits.ToolCalls, WallTime: cb.Limits.WallTime.Seconds()},
		Usage:  []BudgetUsage{}}
	scope := ""
	if user != "" {
		// A user's key sees its own counters, of per-user budgets only.
		if b.Per != "user" {
			return out, nil
		}
		scope = "user:" + user
	}
	if b.Per == "run" || b.Per == "session" {
		window = "*"
	}
	list, err := counters.BudgetCounters(ctx, b.Name, window, scope, MaxBudgetCounters)
	if err != nil {
		return Budget{}, err
	}
	for _, k := range list {
		out.Usage = append(out.Usage, BudgetUsage{Scope: k.Key.Scope, Window: k.Key.Window, Cost: k.Usage.Cost,
			Tokens: k.Usage.Tokens, ToolCalls: k.Usage.ToolCalls, WallTime: k.Usage.WallTime.Seconds()})
	}
	return out, nil
}

// ServingBudgets returns snap's serving Budget documents.
func ServingBudgets(snap *engine.Snapshot) []*spec.Budget { return servingBudgets(snap) }

func (h *Handler) budgetView(ctx context.Context, c *gin.Context, b *spec.Budget, now time.Time) (Budget, error) {
	user := ""
	if p := auth.Of(c); p.Bound() {
		user = p.UserID("")
	}
	return BudgetView(ctx, h.opts.Store, b, user, now)
}

func (h *Handler) listBudgets(c *gin.Context) error {
	now := time.Now()
	out := []Budget{}
	for _, b := range servingBudgets(h.opts.Engine.Current()) {
		v, err := h.budgetView(c.Request.Context(), c, b, now)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (h *Handler) getBudget(c *gin.Context) error {
	for _, b := range servingBudgets(h.opts.Engine.Current()) {
		if b.Name == c.Param("name") {
			v, err := h.budgetView(c.Request.Context(), c, b, time.Now())
			if err != nil {
				return err
			}
			c.JSON(http.StatusOK, v)
			return nil
		}
	}
	return &Error{Status: http.StatusNotFound, Msg: "no serving budget named " + c.Param("name") + ": GET /budgets lists them"}
}
