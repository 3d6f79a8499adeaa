package spec

import "time"

// Budget caps what the agents, teams and workflows referencing it may spend:
// model cost, tokens, tool calls and wall time, counted per run, session, user,
// agent, team or for everyone together, per day, month or for good.
type Budget struct {
	Meta `yaml:",inline"`

	Per      string       `yaml:"per" enum:"run,session,user,agent,team,all" doc:"Who shares one counter: run, session, user, agent, team, or all (one shared pot for everything referencing the budget; default)."`
	Period   string       `yaml:"period" enum:"day,month,none" doc:"When counters start afresh: day, month, or none (default: never; run and session budgets ignore it)."`
	TimeZone string       `yaml:"time_zone" doc:"IANA time zone in which days and months begin (default UTC)."`
	Limits   BudgetLimits `yaml:"limits" spec:"required" doc:"The caps; any subset. A run at or over any cap ends before its next model call."`
}

// BudgetLimits are a budget's caps; zero means no cap.
type BudgetLimits struct {
	Cost      *float64 `yaml:"cost" doc:"Model cost in USD (from Model pricing or the built-in price table)."`
	Tokens    int      `yaml:"tokens" doc:"Input plus output tokens."`
	ToolCalls int      `yaml:"tool_calls" doc:"Tool calls."`
	WallTime  Duration `yaml:"wall_time" doc:"Run wall time, added when each run ends."`
}

// Budget defaults.
const (
	BudgetPerAll     = "all"
	BudgetPeriodNone = "none"
	DefaultTimeZone  = "UTC"
)

func (b *Budget) applyDefaults() {
	if b.Per == "" {
		b.Per = BudgetPerAll
	}
	if b.Period == "" {
		b.Period = BudgetPeriodNone
	}
	if b.TimeZone == "" {
		b.TimeZone = DefaultTimeZone
	}
}

func (b *Budget) validate(v *validator) {
	p := b.Path()
	if _, err := time.LoadLocation(b.TimeZone); err != nil {
		v.errorf(p+".time_zone", "unknown time zone %q: write an IANA name such as UTC or Europe/Berlin", b.TimeZone)
	}
	l := b.Limits
	if l.Cost != nil && *l.Cost <= 0 {
		v.errorf(p+".limits.cost", "cost limit must be positive, got %s", formatFloat(*l.Cost))
	}
	if l.Tokens < 0 {
		v.errorf(p+".limits.tokens", "must not be negative, got %d", l.Tokens)
	}
	if l.ToolCalls < 0 {
		v.errorf(p+".limits.tool_calls", "must not be negative, got %d", l.ToolCalls)
	}
	v.duration(p+".limits.wall_time", l.WallTime)
	if l.Cost == nil && l.Tokens == 0 && l.ToolCalls == 0 && l.WallTime == 0 {
		v.errorf(p+".limits", "a budget needs at least one limit: cost, tokens, tool_calls or wall_time")
	}
}

// budgetRefs checks a list of budget names.
func (v *validator) budgetRefs(path string, names []string) {
	for i, n := range names {
		v.ref(indexPath(path, i), KindBudget, n)
	}
	v.unique(path, names)
}

// Budget returns the budget named name, or nil.
func (s *Set) Budget(name string) *Budget {
	b, _ := s.objects[Key{KindBudget, name}].(*Budget)
	return b
}
