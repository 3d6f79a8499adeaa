package ui

import (
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine"
)

// maxSpendDays bounds a custom window of the Spend page, which reads every
// run in it.
const maxSpendDays = 366

// spendWindow resolves the Spend page's window to its first and last UTC
// days (both included), or explains why a custom one cannot be shown.
func spendWindow(window, from, to string, now time.Time) (name string, first, last time.Time, problem string) {
	today := utcDay(now)
	switch window {
	case "", "today":
		return "today", today, today, ""
	case "7d":
		return "7d", today.AddDate(0, 0, -6), today, ""
	case "month":
		return "month", today.AddDate(0, 0, 1-today.Day()), today, ""
	}
	first, err1 := time.Parse(time.DateOnly, from)
	last, err2 := time.Parse(time.DateOnly, to)
	switch {
	case err1 != nil || err2 != nil:
		return "custom", today, today, "Give both From and To as dates (YYYY-MM-DD); showing today instead."
	case last.Before(first):
		return "custom", today, today, "To is before From; showing today instead."
	case last.Sub(first) >= maxSpendDays*24*time.Hour:
		return "custom", today, today, "Choose at most 366 days; showing today instead."
	}
	return "custom", first, last, ""
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// spendPage shows what the top-level runs of a window cost; a user-bound
// key sees only its user's runs.
func (h *Handler) spendPage(c *gin.Context) {
	name, first, last, problem := spendWindow(c.Query("window"), c.Query("from"), c.Query("to"), time.Now())
	s := view.Spend{Window: name, From: first.Format(time.DateOnly), To: last.Format(time.DateOnly), Error: problem}
	f := userFilter(c)
	s.User = f.UserID
	var err error
	if s.Data, err = h.opts.Store.Spend(c.Request.Context(), first, last.AddDate(0, 0, 1), f); err != nil {
		h.fail(c, "spend", err)
		return
	}
	h.render(c, http.StatusOK, view.SpendPage(h.frame(c, "Spend", "spend"), s))
}

// budgetsPage shows every serving budget, who references it and its
// counters in the current window, from the data of GET /budgets.
func (h *Handler) budgetsPage(c *gin.Context) {
	snap := h.opts.Engine.Current()
	user := ""
	if p := auth.Of(c); p.Bound() {
		user = p.UserID("")
	}
	out := view.Budgets{User: user}
	now := time.Now()
	for _, b := range api.ServingBudgets(snap) {
		v, err := api.BudgetView(c.Request.Context(), h.opts.Store, b, user, now)
		if err != nil {
			h.fail(c, "budgets", err)
			return
		}
		it := view.Budget{Name: v.Name, Description: v.Description, Per: v.Per, Period: v.Period, TimeZone: v.TimeZone, Window: v.Window,
			Limits: view.BudgetAmounts{Cost: v.Limits.Cost, Tokens: v.Limits.Tokens, ToolCalls: v.Limits.ToolCalls, WallTime: seconds(v.Limits.WallTime)},
			UsedBy: budgetUsers(snap, b.Name)}
		for _, u := range v.Usage {
			it.Usage = append(it.Usage, view.BudgetCounter{Scope: u.Scope,
				Used: view.BudgetAmounts{Cost: u.Cost, Tokens: u.Tokens, ToolCalls: u.ToolCalls, WallTime: seconds(u.WallTime)}})
		}
		out.Items = append(out.Items, it)
	}
	h.render(c, http.StatusOK, view.BudgetsPage(h.frame(c, "Budgets", "budgets"), out))
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// budgetUsers names the agents, teams and workflows of snap that reference
// the budget name.
func budgetUsers(snap *engine.Snapshot, name string) []string {
	var out []string
	for _, a := range snap.Agents() {
		if slices.Contains(a.Spec.Budgets, name) {
			out = append(out, "agent "+a.Name())
		}
	}
	for _, t := range snap.Teams() {
		if slices.Contains(t.Spec.Budgets, name) {
			out = append(out, "team "+t.Name())
		}
	}
	for _, w := range snap.Workflows() {
		if slices.Contains(w.Spec.Budgets, name) {
			out = append(out, "workflow "+w.Spec.Name)
		}
	}
	return out
}
