// Package budget enforces Budget documents: caps on the model cost, tokens,
// tool calls and wall time of the runs that reference them, counted per run,
// session, user, runner or for everyone together, per day, month or for good.
//
// Counters live in the database (a Store), so every replica enforces the same
// budget. A run reads its counters once when it starts (Open), keeps them in
// memory, and refreshes them from the totals each increment returns; the
// check before a model call (Check) is therefore a few comparisons and never
// a query. A run that crosses a cap finishes the model call or tool call it is
// in; the next check, in that run or any later one, refuses.
package budget

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
)

// Usage is what counts against a budget.
type Usage struct {
	Cost      model.Cost
	Tokens    int64
	ToolCalls int64
	WallTime  time.Duration
}

// IsZero reports whether u adds nothing.
func (u Usage) IsZero() bool { return u == Usage{} }

// Limits are a budget's caps; zero means none.
type Limits struct {
	Cost      model.Cost
	Tokens    int64
	ToolCalls int64
	WallTime  time.Duration
}

// Budget is a compiled Budget document.
type Budget struct {
	Name   string
	Per    string // run | session | user | agent | team | all
	Period string // day | month | none
	Loc    *time.Location
	Limits Limits
}

// Compile turns a Budget document into a Budget. Validation has ruled out a
// bad time zone; UTC stands in should one slip through.
func Compile(b *spec.Budget) *Budget {
	loc, err := time.LoadLocation(b.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	c := &Budget{Name: b.Name, Per: b.Per, Period: b.Period, Loc: loc, Limits: Limits{
		Tokens: int64(b.Limits.Tokens), ToolCalls: int64(b.Limits.ToolCalls), WallTime: b.Limits.WallTime.D(),
	}}
	if b.Limits.Cost != nil {
		c.Limits.Cost = model.CostFromDollars(*b.Limits.Cost)
	}
	return c
}

// Key identifies one counter: a budget, whose it is (Scope: the user id,
// session id, run id, runner name, or "" for all) and the window it counts
// (Window: 2026-12-07 for a day, 2026-12 for a month, "" for none).
type Key struct {
	Budget string
	Scope  string
	Window string
}

func (k Key) String() string {
	s := k.Budget
	if k.Scope != "" {
		s += " for " + k.Scope
	}
	if k.Window != "" {
		s += " in " + k.Window
	}
	return s
}

// Subject is who a run is for: what the per-keys of its budgets are.
type Subject struct {
	RunID     string
	SessionID string
	UserID    string
	// Runner is the agent, team or workflow whose spec references the
	// budgets: the key of per agent and per team budgets.
	Runner string
}

// Key returns the counter of b that a run of s at now counts against.
func (b *Budget) Key(s Subject, now time.Time) Key {
	k := Key{Budget: b.Name}
	switch b.Per {
	case "run":
		k.Scope = "run:" + s.RunID
	case "session":
		k.Scope = "session:" + s.SessionID
	case "user":
		k.Scope = "user:" + s.UserID
	case "agent":
		k.Scope = "agent:" + s.Runner
	case "team":
		k.Scope = "team:" + s.Runner
	}
	if b.Per == "run" || b.Per == "session" {
		return k // they ignore the period: a run or session is its own window
	}
	t := now.In(b.Loc)
	switch b.Period {
	case "day":
		k.Window = t.Format("2006-01-02")
	case "month":
		k.Window = t.Format("2006-01")
	}
	return k
}

// Store keeps the counters. It is declared here, where it is consumed, and
// implemented by the store package.
type Store interface {
	// BudgetUsage returns the totals of each key (zero for keys never used).
	BudgetUsage(ctx context.Context, keys []Key) ([]Usage, error)
	// AddBudgetUsage adds d to each key's counter atomically (creating it
	// when missing) and returns the new totals, in the order of keys.
	AddBudgetUsage(ctx context.Context, keys []Key, d Usage) ([]Usage, error)
}

// ExceededError is the error of a run refused by a budget.
type ExceededError struct {
	Budget string
	Key    Key
	Limit  string // cost, tokens, tool_calls or wall_time
	Max    string // the cap, formatted
	Used   string // the usage, formatted
}

func (e *ExceededError) Error() string {
	return fmt.Sprintf("budget %s exceeded: %s %s of %s used (%s); raise limits.%s in the Budget document or wait for its next period",
		e.Budget, e.Limit, e.Used, e.Max, e.Key, e.Limit)
}

// ErrorKind is the RunError type of a budget refusal.
const ErrorKind = "budget_exceeded"

// exceeded returns the first cap u is at or over.
func (l Limits) exceeded(u Usage) (limit, max, used string, ok bool) {
	switch {
	case l.Cost > 0 && u.Cost >= l.Cost:
		return "cost", fmt.Sprintf("$%g", l.Cost.Dollars()), fmt.Sprintf("$%g", u.Cost.Dollars()), true
	case l.Tokens > 0 && u.Tokens >= l.Tokens:
		return "tokens", fmt.Sprint(l.Tokens), fmt.Sprint(u.Tokens), true
	case l.ToolCalls > 0 && u.ToolCalls >= l.ToolCalls:
		return "tool_calls", fmt.Sprint(l.ToolCalls), fmt.Sprint(u.ToolCalls), true
	case l.WallTime > 0 && u.WallTime >= l.WallTime:
		return "wall_time", l.WallTime.String(), u.WallTime.Round(time.Millisecond).String(), true
	}
	return "", "", "", false
}

// Policy is what a runner needs to enforce its budgets; the zero Policy
// enforces nothing and costs nothing.
type Policy struct {
	Budgets []*Budget
	Store   Store
	Now     func() time.Time
}

// Enabled reports whether p has budgets to enforce.
func (p Policy) Enabled() bool { return len(p.Budgets) > 0 && p.Store != nil }

// Tracker is one run's view of its budgets: their counters, cached. Safe for
// concurrent use (a run's tools finish on several goroutines).
type Tracker struct {
	store  Store
	parent *Tracker
	owner  string // the runner that opened it, for errors
	start  time.Time
	now    func() time.Time

	mu      sync.Mutex
	budgets []*Budget
	keys    []Key
	totals  []Usage
}

type trackerKey struct{}

// Open reads the counters of p's budgets for subject s and returns ctx
// carrying a tracker over them, chained to any tracker ctx already carries
// (a team's, for its members): checks and usage apply to both. A key the
// enclosing run already counts is not counted twice. Open returns ctx
// unchanged when p enforces nothing.
func Open(ctx context.Context, p Policy, s Subject) (context.Context, *Tracker, error) {
	if !p.Enabled() {
		return ctx, nil, nil
	}
	now := p.Now
	if now == nil {
		now = time.Now
	}
	parent, _ := ctx.Value(trackerKey{}).(*Tracker)
	t := &Tracker{store: p.Store, parent: parent, owner: s.Runner, start: now(), now: now}
	at := t.start
	for _, b := range p.Budgets {
		k := b.Key(s, at)
		if parent.counts(k) || containsKey(t.keys, k) {
			continue
		}
		t.budgets, t.keys = append(t.budgets, b), append(t.keys, k)
	}
	if len(t.keys) == 0 {
		return ctx, nil, nil
	}
	totals, err := p.Store.BudgetUsage(ctx, t.keys)
	if err != nil {
		return ctx, nil, fmt.Errorf("reading budgets %s: %w", t.names(), err)
	}
	t.totals = totals
	return context.WithValue(ctx, trackerKey{}, t), t, nil
}

func containsKey(keys []Key, k Key) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func (t *Tracker) counts(k Key) bool {
	for ; t != nil; t = t.parent {
		if containsKey(t.keys, k) {
			return true
		}
	}
	return false
}

func (t *Tracker) names() string {
	var n []string
	for _, b := range t.budgets {
		n = append(n, b.Name)
	}
	return strings.Join(n, ", ")
}

// Tracking reports whether ctx carries budgets to enforce.
func Tracking(ctx context.Context) bool {
	_, ok := ctx.Value(trackerKey{}).(*Tracker)
	return ok
}

// Check returns an *ExceededError when any budget of ctx's trackers is at or
// over a cap, from the cached totals (no query). It costs one context lookup
// when ctx carries no tracker.
func Check(ctx context.Context) error {
	t, _ := ctx.Value(trackerKey{}).(*Tracker)
	for ; t != nil; t = t.parent {
		if err := t.check(); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tracker) check() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, b := range t.budgets {
		if limit, max, used, over := b.Limits.exceeded(t.totals[i]); over {
			return &ExceededError{Budget: b.Name, Key: t.keys[i], Limit: limit, Max: max, Used: used}
		}
	}
	return nil
}

// Record adds d to the counters of every tracker ctx carries and refreshes
// their cached totals from the database's. It does nothing without a tracker.
func Record(ctx context.Context, d Usage) error {
	if d.IsZero() {
		return nil
	}
	t, _ := ctx.Value(trackerKey{}).(*Tracker)
	for ; t != nil; t = t.parent {
		if err := t.add(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tracker) add(ctx context.Context, d Usage) error {
	// Counting survives the run's cancellation: usage that happened must
	// reach the counters, or a cancelled run would spend for free.
	totals, err := t.store.AddBudgetUsage(context.WithoutCancel(ctx), t.keys, d)
	if err != nil {
		return fmt.Errorf("counting usage against budgets %s: %w", t.names(), err)
	}
	t.mu.Lock()
	t.totals = totals
	t.mu.Unlock()
	return nil
}

// Close adds the run's wall time since Open to the tracker's own counters
// (not its parent's, whose run is still going and counts its own time).
func (t *Tracker) Close(ctx context.Context) error {
	if t == nil {
		return nil
	}
	for _, b := range t.budgets {
		if b.Limits.WallTime > 0 {
			return t.add(ctx, Usage{WallTime: t.now().Sub(t.start)})
		}
	}
	return nil
}

// Totals returns the cached totals of the tracker's own keys.
func (t *Tracker) Totals() ([]Key, []Usage) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Key(nil), t.keys...), append([]Usage(nil), t.totals...)
}

// OfResponse is the usage of one model answer.
func OfResponse(r *model.Response) Usage {
	return Usage{Cost: r.Cost, Tokens: int64(r.Usage.InputTokens + r.Usage.OutputTokens)}
}

// Budgeted is a runner with budgets (agents and teams).
type Budgeted interface {
	BudgetPolicy() Policy
}

// PolicyOf returns the budgets of runner, the zero Policy (none) when it
// has none.
func PolicyOf(runner any) Policy {
	if b, ok := runner.(Budgeted); ok {
		return b.BudgetPolicy()
	}
	return Policy{}
}

// Spend adds the usage of background model work to the spend of the run it
// followed (store.DB), so session totals and spend reports count what the
// run caused, not only its own calls.
type Spend interface {
	AddRunUsage(ctx context.Context, runID string, tokens int64, cost model.Cost, costUnknown bool) error
}

// Background makes one model call of the work that follows run s.RunID (a
// session summary, a memory extraction, a distilled learning) and counts
// it as the run's own calls are counted: against p's budgets — refused
// with an *ExceededError, without calling, when one of them is spent — and
// in the run's spend through spend (nil: budgets only). The run has ended,
// so its tracker is gone; this opens one for the call alone. spendErr is a
// failure of that last step only: the call happened and its answer is
// good, so callers log it rather than fail.
func Background(ctx context.Context, p Policy, s Subject, spend Spend, call func(context.Context) (*model.Response, error)) (resp *model.Response, spendErr, err error) {
	ctx, _, err = Open(ctx, p, s)
	if err != nil {
		return nil, nil, err
	}
	if err := Check(ctx); err != nil {
		return nil, nil, err
	}
	if resp, err = call(ctx); err != nil {
		return nil, nil, err
	}
	if err := Record(ctx, OfResponse(resp)); err != nil {
		return resp, nil, err
	}
	if spend != nil {
		spendErr = spend.AddRunUsage(ctx, s.RunID, OfResponse(resp).Tokens, resp.Cost, !resp.CostKnown)
	}
	return resp, spendErr, nil
}
