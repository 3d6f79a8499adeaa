package spec

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/troupehq/troupe/spec/expr"
)

// Catch-up policies of a schedule: what happens to ticks missed while no
// replica ran.
const (
	// CatchUpSkip drops missed ticks: the trigger fires at its next tick.
	CatchUpSkip = "skip"
	// CatchUpOnce fires once as the server starts when at least one tick
	// was missed since the trigger last fired, then follows the schedule.
	CatchUpOnce = "once"
)

// DefaultSignatureHeader is the header a webhook's HMAC-SHA256 signature is
// read from (GitHub's): "sha256=" and the hex digest of the raw body.
const DefaultSignatureHeader = "X-Hub-Signature-256"

// MinWebhookSecret is the shortest webhook secret accepted, in bytes.
const MinWebhookSecret = 16

// MinEvery is the shortest interval of an every: schedule.
const MinEvery = time.Second

// Trigger starts runs of an agent, a team or a workflow on a schedule or when
// a webhook is called.
type Trigger struct {
	Meta `yaml:",inline"`

	Target   Target         `yaml:"target" spec:"required" doc:"What the trigger runs: exactly one of agent, team or workflow."`
	Schedule *Schedule      `yaml:"schedule" doc:"Fire on a schedule (exactly one of schedule or webhook)."`
	Webhook  *Webhook       `yaml:"webhook" doc:"Fire when POST /hooks/{path} is called with a valid signature (exactly one of schedule or webhook)."`
	Message  string         `yaml:"message" doc:"The message the run gets. For webhooks a template over the request: {{ body.field }} (the JSON body), {{ headers['X-Name'] }}, {{ raw }}; empty means the raw request body."`
	Input    map[string]any `yaml:"input" doc:"Static input of the run, sent as JSON when message is empty."`

	// message is Message compiled as a webhook template (check).
	message *expr.Template
}

// WebhookMessage returns a webhook trigger's message template, compiled
// against the variables body (the request's JSON body, null when it is not
// JSON), headers (the request's headers, by canonical name) and raw (the
// body as text); nil when the trigger has no message or no webhook.
func (t *Trigger) WebhookMessage() *expr.Template { return t.message }

// webhookEnv declares the variables of a webhook's message template.
var webhookEnv = sync.OnceValues(func() (*expr.Env, error) {
	return expr.NewEnv(
		expr.Var{Name: "body", Type: expr.Dyn},
		expr.Var{Name: "headers", Type: expr.MapOf(expr.String, expr.String)},
		expr.Var{Name: "raw", Type: expr.String},
	)
})

// check compiles a webhook trigger's message template once, when the
// document is decoded, as workflows compile theirs.
func (t *Trigger) check() Diagnostics {
	if t.Webhook == nil || t.Message == "" {
		return nil
	}
	path := t.Path() + ".message"
	env, err := webhookEnv()
	if err != nil {
		return Diagnostics{{Pos: t.PosOf(path), Path: path, Severity: Error, Msg: err.Error()}}
	}
	tmpl, err := env.CompileTemplate(t.Message)
	if err != nil {
		pos := t.PosOf(path)
		msg := err.Error()
		if e, ok := err.(*expr.Error); ok {
			pos, msg = t.scalarPos(path, t.Message, e.Offset), e.Msg
			if strings.HasPrefix(msg, "undeclared reference") {
				msg += "; the variables here are body, headers, raw"
			}
		}
		return Diagnostics{{Pos: pos, Path: path, Severity: Error, Msg: msg}}
	}
	t.message = tmpl
	return nil
}

// Target names what a trigger runs.
type Target struct {
	Agent    string `yaml:"agent" doc:"An agent name."`
	Team     string `yaml:"team" doc:"A team name."`
	Workflow string `yaml:"workflow" doc:"A workflow name."`
}

// Key returns the targeted object's identity, or a zero Key when the target
// names none or several.
func (t Target) Key() Key {
	var keys []Key
	for _, k := range []Key{{KindAgent, t.Agent}, {KindTeam, t.Team}, {KindWorkflow, t.Workflow}} {
		if k.Name != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) != 1 {
		return Key{}
	}
	return keys[0]
}

// Schedule fires a trigger at the ticks of a cron expression or an interval.
type Schedule struct {
	Cron     string   `yaml:"cron" doc:"A 5-field cron expression (minute hour day-of-month month day-of-week), such as \"0 2 * * *\"."`
	Every    Duration `yaml:"every" doc:"An interval of at least 1s, such as 1h; ticks are aligned to multiples of it since the Unix epoch."`
	Timezone string   `yaml:"timezone" doc:"IANA time zone of the cron expression, such as Europe/Paris (default UTC)."`
	CatchUp  string   `yaml:"catch_up" enum:"skip,once" doc:"skip (default): ticks missed while no replica ran are dropped; once: fire once at start when at least one tick was missed."`
}

// Webhook fires a trigger when its path is called with a body signed by its
// secret.
type Webhook struct {
	Path            string `yaml:"path" spec:"required" doc:"Served at POST /hooks/{path}: letters, digits, -, _ and / between segments."`
	Secret          string `yaml:"secret" spec:"required" doc:"HMAC-SHA256 key of the body's signature, at least 16 bytes; write ${VAR} to keep it out of the file."`
	SignatureHeader string `yaml:"signature_header" doc:"Header holding sha256=<hex digest> (default X-Hub-Signature-256)."`
}

func (t *Trigger) applyDefaults() {
	if s := t.Schedule; s != nil {
		if s.Timezone == "" {
			s.Timezone = "UTC"
		}
		if s.CatchUp == "" {
			s.CatchUp = CatchUpSkip
		}
	}
	if w := t.Webhook; w != nil && w.SignatureHeader == "" {
		w.SignatureHeader = DefaultSignatureHeader
	}
}

var webhookPathRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)

func (t *Trigger) validate(v *validator) {
	p := t.Path()
	t.validateTarget(v, p+".target")
	switch {
	case t.Schedule == nil && t.Webhook == nil:
		v.errorf(p, "a trigger needs a schedule or a webhook: add one of them")
	case t.Schedule != nil && t.Webhook != nil:
		v.errorf(p+".webhook", "a trigger has either a schedule or a webhook, not both: split it into two triggers")
	}
	if t.Schedule != nil {
		t.Schedule.validate(v, p+".schedule")
	}
	if t.Webhook != nil {
		t.validateWebhook(v, p+".webhook")
	}
	if t.Message != "" && len(t.Input) > 0 {
		v.errorf(p+".input", "a trigger has either a message or an input, not both")
	}
}

func (t *Trigger) validateTarget(v *validator, p string) {
	refs := []struct {
		kind Kind
		name string
	}{{KindAgent, t.Target.Agent}, {KindTeam, t.Target.Team}, {KindWorkflow, t.Target.Workflow}}
	n := 0
	for _, r := range refs {
		if r.name != "" {
			n++
		}
	}
	if n != 1 {
		v.errorf(p, "name exactly one of agent, team or workflow as the target, got %d", n)
		return
	}
	for _, r := range refs {
		if r.name != "" {
			v.ref(p+"."+r.kind.Lower(), r.kind, r.name)
		}
	}
}

func (s *Schedule) validate(v *validator, p string) {
	switch {
	case s.Cron == "" && s.Every == 0:
		v.errorf(p, "a schedule needs cron or every: add one of them")
	case s.Cron != "" && s.Every != 0:
		v.errorf(p+".every", "a schedule has either cron or every, not both")
	case s.Cron != "":
		if col, msg := cronProblem(s.Cron); msg != "" {
			pos := v.meta.PosOf(p + ".cron")
			if v.meta.styles[p+".cron"]&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
				pos.Col++
			}
			pos.Col += col
			v.diags = append(v.diags, Diagnostic{Pos: pos, Path: p + ".cron", Severity: Error, Msg: msg})
		}
	case s.Every.D() < MinEvery:
		v.errorf(p+".every", "every must be at least %s, got %s", MinEvery, s.Every)
	}
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			v.errorf(p+".timezone", "unknown time zone %q: write an IANA name such as UTC or Europe/Paris", s.Timezone)
		}
	}
}

// cronParser reads the standard 5-field syntax (and @daily-style macros).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var cronFieldNames = []string{"minute", "hour", "day of month", "month", "day of week"}

// cronProblem parses expr and returns, when it is invalid, the byte offset
// of the offending field and a message naming it.
func cronProblem(expr string) (col int, msg string) {
	if _, err := cronParser.Parse(expr); err == nil {
		return 0, ""
	} else if strings.HasPrefix(expr, "@") || strings.HasPrefix(strings.TrimSpace(expr), "TZ=") || strings.HasPrefix(strings.TrimSpace(expr), "CRON_TZ=") {
		return 0, fmt.Sprintf("invalid cron expression %q: %v (write the time zone in timezone:)", expr, err)
	}
	type field struct {
		text string
		at   int
	}
	var fields []field
	for i := 0; i < len(expr); {
		if expr[i] == ' ' || expr[i] == '\t' {
			i++
			continue
		}
		j := i
		for j < len(expr) && expr[j] != ' ' && expr[j] != '\t' {
			j++
		}
		fields = append(fields, field{expr[i:j], i})
		i = j
	}
	if len(fields) != 5 {
		return 0, fmt.Sprintf("invalid cron expression %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", expr, len(fields))
	}
	for i, f := range fields {
		probe := []string{"*", "*", "*", "*", "*"}
		probe[i] = f.text
		if _, err := cronParser.Parse(strings.Join(probe, " ")); err != nil {
			return f.at, fmt.Sprintf("invalid cron expression: %s field %q: %v", cronFieldNames[i], f.text, err)
		}
	}
	return 0, fmt.Sprintf("invalid cron expression %q", expr)
}

// CronSchedule returns the schedule of a valid cron expression in loc.
func CronSchedule(expr string, loc *time.Location) (cron.Schedule, error) {
	s, err := cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("parsing cron expression %q: %w", expr, err)
	}
	if spec, ok := s.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	return s, nil
}

func (t *Trigger) validateWebhook(v *validator, p string) {
	w := t.Webhook
	if w.Path != "" && !webhookPathRE.MatchString(w.Path) {
		v.errorf(p+".path", "invalid webhook path %q: use letters, digits, - and _, with / between segments (no leading /)", w.Path)
	}
	if w.Secret == "" && v.meta.Interpolated(p+".secret") {
		v.errorf(p+".secret", "the secret is empty after interpolation: set the variable to at least %d random bytes", MinWebhookSecret)
	} else if w.Secret != "" && len(w.Secret) < MinWebhookSecret {
		v.errorf(p+".secret", "the secret is %d bytes: use at least %d random bytes (such as openssl rand -hex 32)", len(w.Secret), MinWebhookSecret)
	}
	if w.Path == "" {
		return
	}
	// The first trigger with the path (by file order) keeps it; the others
	// are told where it is taken.
	for _, k := range v.set.keys {
		if k.Kind != KindTrigger || k.Name == t.Name {
			continue
		}
		other := v.set.objects[k].(*Trigger)
		if other.Webhook == nil || other.Webhook.Path != w.Path {
			continue
		}
		if before(other.Header(), t.Header()) {
			v.errorf(p+".path", "webhook path %q is already used by trigger %q at %s", w.Path, other.Name, other.PosOf(other.Path()+".webhook.path"))
			return
		}
	}
}

// before reports whether document a comes before b in the folder.
func before(a, b *Meta) bool {
	if a.pos.File != b.pos.File {
		return a.pos.File < b.pos.File
	}
	return a.index < b.index
}
