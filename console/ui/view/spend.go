package view

import (
	"strconv"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// SpendWindows are the Spend page's windows besides a custom from–to.
var SpendWindows = []struct{ Name, Label string }{
	{"today", "Today"}, {"7d", "Last 7 days"}, {"month", "This month"},
}

// Spend is the Spend page: what the runs of a window cost.
type Spend struct {
	// Window is today, 7d, month or custom; From and To are its first and
	// last UTC days (YYYY-MM-DD, both included).
	Window, From, To string
	// User is set when the key is bound to a user: only its runs count.
	User string
	// Error explains a custom window that could not be read.
	Error string
	Data  *store.Spend
}

// Budgets is the Budgets page.
type Budgets struct {
	// User is set when the key is bound to a user: only its counters show.
	User  string
	Items []Budget
}

// Budget is one Budget document and its counters in the current window.
type Budget struct {
	Name, Description, Per, Period, TimeZone, Window string
	Limits                                           BudgetAmounts
	// UsedBy names the agents, teams and workflows that reference it
	// ("agent support").
	UsedBy []string
	Usage  []BudgetCounter
}

// BudgetAmounts are a budget's limits or a counter's usage; a zero limit
// is none.
type BudgetAmounts struct {
	Cost      model.Cost
	Tokens    int64
	ToolCalls int64
	WallTime  time.Duration
}

// BudgetCounter is one counter (a user's, an agent's, a shared pot's).
type BudgetCounter struct {
	Scope string // user:alice, agent:support, run:…; "" for a shared pot
	Used  BudgetAmounts
}

// Consumption is one limit kind of a counter: used of limit.
type Consumption struct {
	Kind, Used, Limit string
	Percent           float64
}

// Class colours a consumption bar: bad at or over its limit, warn from 80 %.
func (c Consumption) Class() string {
	switch {
	case c.Percent >= 100:
		return "bad"
	case c.Percent >= 80:
		return "warn"
	}
	return "ok"
}

// Width is the bar's length out of 100, capped at a full bar.
func (c Consumption) Width() string { return num(min(c.Percent, 100)) }

// Label is the percentage, rounded down so 99.9 % never reads as 100 %.
func (c Consumption) Label() string { return strconv.FormatInt(int64(c.Percent), 10) + "%" }

// Consumptions lists a counter's consumption of each limit the budget sets.
func (b Budget) Consumptions(k BudgetCounter) []Consumption {
	var out []Consumption
	add := func(kind string, used, limit float64, show func(float64) string) {
		if limit > 0 {
			out = append(out, Consumption{Kind: kind, Used: show(used), Limit: show(limit), Percent: 100 * used / limit})
		}
	}
	count := func(f float64) string { return strconv.FormatInt(int64(f), 10) }
	add("cost", float64(k.Used.Cost), float64(b.Limits.Cost), func(f float64) string { return usd(model.Cost(f)) })
	add("tokens", float64(k.Used.Tokens), float64(b.Limits.Tokens), count)
	add("tool calls", float64(k.Used.ToolCalls), float64(b.Limits.ToolCalls), count)
	add("wall time", float64(k.Used.WallTime), float64(b.Limits.WallTime), func(f float64) string { return dur(time.Duration(f)) })
	return out
}

// LimitsText sums up a budget's limits.
func (b Budget) LimitsText() string {
	s := ""
	for _, c := range b.Consumptions(BudgetCounter{}) {
		if s != "" {
			s += " · "
		}
		s += c.Kind + " " + c.Limit
	}
	if s == "" {
		return "no limits"
	}
	return s
}

// usd shows a cost in dollars: cents from a dollar up, up to six decimals
// below, so small model calls do not read as $0.00.
func usd(c model.Cost) string {
	d := c.Dollars()
	if c == 0 {
		return "$0"
	}
	if d >= 1 || d <= -1 {
		return "$" + strconv.FormatFloat(d, 'f', 2, 64)
	}
	s := strings.TrimRight(strconv.FormatFloat(d, 'f', 6, 64), "0")
	if strings.HasSuffix(s, ".") {
		return "<$0.000001"
	}
	return "$" + s
}

// cost shows a line's cost, marked when part of it is unknown.
func cost(c model.Cost, unknown bool) string {
	if unknown {
		return usd(c) + "+"
	}
	return usd(c)
}

// spendBar is one day of the Spend page's chart.
type spendBar struct {
	X, W, Y, H float64
	Title      string
}

// spendChart lays out a window's days as bars of cost, every day of the
// window a slot, days without runs empty.
type spendChart struct {
	Bars  []spendBar
	Max   model.Cost
	Label string
}

// maxChartDays bounds the chart's slots; a longer custom window shows its
// last days.
const maxChartDays = 366

func newSpendChart(s Spend) spendChart {
	c := spendChart{}
	from, err1 := time.Parse(time.DateOnly, s.From)
	to, err2 := time.Parse(time.DateOnly, s.To)
	if err1 != nil || err2 != nil || to.Before(from) || s.Data == nil {
		return c
	}
	n := int(to.Sub(from).Hours()/24) + 1
	if n > maxChartDays {
		from, n = to.AddDate(0, 0, 1-maxChartDays), maxChartDays
	}
	byDay := map[string]store.SpendDay{}
	for _, d := range s.Data.Days {
		byDay[d.Date] = d
		c.Max = max(c.Max, d.Cost)
	}
	slot := chartW / float64(n)
	h := chartH - chartTop
	for i := range n {
		day := from.AddDate(0, 0, i).Format(time.DateOnly)
		d := byDay[day]
		b := spendBar{X: float64(i)*slot + slot*0.1, W: slot * 0.8, Title: day + ": " + usd(d.Cost) + ", " + plural(d.Runs, "run", "runs")}
		if c.Max > 0 {
			b.H = h * float64(d.Cost) / float64(c.Max)
		}
		b.Y = chartH - b.H
		c.Bars = append(c.Bars, b)
	}
	c.Label = "Cost per day from " + s.From + " to " + s.To + ": " + usd(s.Data.Total.Cost) + " in all, at most " + usd(c.Max) + " a day"
	return c
}

// spendURL links a window of the Spend page.
func spendURL(window string) string { return "/ui/spend?window=" + window }

// componentURL links an agent's, team's or workflow's page.
func componentURL(typ, name string) string {
	if typ == "workflow" {
		return "/ui/workflows/" + name
	}
	return targetURL(typ, name)
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// runCost shows a run's cost where its tokens show; empty for a run that
// cost nothing known (echo, or no model call).
func runCost(m event.Metrics) string {
	if m.Cost == 0 && !m.CostUnknown {
		return ""
	}
	return cost(m.Cost, m.CostUnknown)
}

// spanCost shows a run's or a model call's cost from its span's cost_usd
// attribute; empty when the span has none.
func spanCost(s telemetry.Span) string {
	v, ok := s.Attributes[telemetry.CostAttribute]
	if !ok {
		return ""
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return v
	}
	return cost(model.CostFromDollars(f), s.Attributes[telemetry.CostUnknownAttribute] == "true")
}
