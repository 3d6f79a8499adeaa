package spec

import (
	"slices"
	"strings"
	"time"
)

// Guardrails check the text entering (input) and leaving (output) an agent or a
// team. Each list runs in order; the first guardrail that blocks ends the run.
type Guardrails struct {
	Input  []Guardrail `yaml:"input" doc:"Guardrails run on the user message before the first model call."`
	Output []Guardrail `yaml:"output" doc:"Guardrails run on the final answer before it is stored and returned."`
}

// Empty reports whether no guardrail is declared.
func (g Guardrails) Empty() bool { return len(g.Input) == 0 && len(g.Output) == 0 }

// Guardrail is one check: exactly one of its kind keys is set.
type Guardrail struct {
	Name      string          `yaml:"name" doc:"Name used in errors and spans (default: the guardrail's kind)."`
	PII       *PIIGuard       `yaml:"pii" doc:"Detect personal data and secrets (email, phone, card, iban, api_key)."`
	Injection *InjectionGuard `yaml:"injection" doc:"Score the text for prompt-injection patterns (0 to 1)."`
	Size      *SizeGuard      `yaml:"size" doc:"Block text longer than a limit."`
	Model     *ModelGuard     `yaml:"model" doc:"Ask a model to judge the text; it answers ALLOW or BLOCK."`
	HTTP      *HTTPGuard      `yaml:"http" doc:"POST {text, direction, agent} to a moderation endpoint that answers {allow, reason}."`
}

// Guardrail kinds, as written in YAML.
const (
	GuardPII       = "pii"
	GuardInjection = "injection"
	GuardSize      = "size"
	GuardModel     = "model"
	GuardHTTP      = "http"
)

// Guardrail actions and error policies.
const (
	GuardBlock  = "block"
	GuardRedact = "redact"
	GuardAllow  = "allow"
)

// PIIKinds are the kinds of personal data the pii guardrail detects.
var PIIKinds = []string{"email", "phone", "card", "iban", "api_key"}

// Defaults for guardrails.
const (
	DefaultInjectionThreshold = 0.5
	DefaultGuardTimeout       = 5 * time.Second
)

// PIIGuard detects personal data and secrets.
type PIIGuard struct {
	Action string   `yaml:"action" enum:"block,redact" doc:"block ends the run; redact replaces each match with [REDACTED:kind] (default redact)."`
	Kinds  []string `yaml:"kinds" doc:"Kinds to detect: email, phone, card, iban, api_key (default all)."`
}

// InjectionGuard scores prompt-injection heuristics; it can only block.
type InjectionGuard struct {
	Action    string   `yaml:"action" enum:"block" doc:"block (the only action: an injection cannot be redacted)."`
	Threshold *float64 `yaml:"threshold" doc:"Score from 0 to 1 at or above which the text is blocked (default 0.5)."`
}

// SizeGuard blocks text longer than MaxBytes.
type SizeGuard struct {
	MaxBytes int `yaml:"max_bytes" spec:"required" doc:"Largest text allowed, in bytes."`
}

// ModelGuard asks a model whether the text may pass.
type ModelGuard struct {
	Model   string   `yaml:"model" spec:"required" doc:"provider/model, echo, or the name of a Model document."`
	Prompt  string   `yaml:"prompt" spec:"required" doc:"Instructions for the judge; it must answer ALLOW or BLOCK (optionally followed by a reason)."`
	Timeout Duration `yaml:"timeout" doc:"Limit for the judge's answer (default 5s)."`
	OnError string   `yaml:"on_error" enum:"allow,block" doc:"allow lets the text pass when the judge fails or times out (fail-open); block stops it (fail-closed, the default)."`
}

// HTTPGuard asks a moderation endpoint whether the text may pass.
type HTTPGuard struct {
	URL     string            `yaml:"url" spec:"required" doc:"Endpoint receiving POST {text, direction, agent}; it answers {allow: bool, reason: string}. Subject to the egress rules."`
	Timeout Duration          `yaml:"timeout" doc:"Limit for the endpoint's answer (default 5s)."`
	OnError string            `yaml:"on_error" enum:"allow,block" doc:"allow lets the text pass when the endpoint fails (fail-open); block stops it (fail-closed, the default)."`
	Headers map[string]string `yaml:"headers" doc:"Extra request headers (use ${ENV} for secrets)."`
}

// Label is the guardrail's name, or its kind when it has none.
func (g *Guardrail) Label() string {
	if g.Name != "" {
		return g.Name
	}
	return g.Kind()
}

// Kind returns the guardrail's kind key, or "" when none or several are set.
func (g *Guardrail) Kind() string {
	kinds := g.kinds()
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

func (g *Guardrail) kinds() []string {
	var k []string
	if g.PII != nil {
		k = append(k, GuardPII)
	}
	if g.Injection != nil {
		k = append(k, GuardInjection)
	}
	if g.Size != nil {
		k = append(k, GuardSize)
	}
	if g.Model != nil {
		k = append(k, GuardModel)
	}
	if g.HTTP != nil {
		k = append(k, GuardHTTP)
	}
	return k
}

func (g *Guardrails) applyDefaults() {
	for _, list := range [][]Guardrail{g.Input, g.Output} {
		for i := range list {
			list[i].applyDefaults()
		}
	}
}

func (g *Guardrail) applyDefaults() {
	switch {
	case g.PII != nil:
		if g.PII.Action == "" {
			g.PII.Action = GuardRedact
		}
		if len(g.PII.Kinds) == 0 {
			g.PII.Kinds = PIIKinds
		}
	case g.Injection != nil:
		if g.Injection.Action == "" {
			g.Injection.Action = GuardBlock
		}
		if g.Injection.Threshold == nil {
			t := DefaultInjectionThreshold
			g.Injection.Threshold = &t
		}
	case g.Model != nil:
		if g.Model.Timeout == 0 {
			g.Model.Timeout = Duration(DefaultGuardTimeout)
		}
		if g.Model.OnError == "" {
			g.Model.OnError = GuardBlock
		}
	case g.HTTP != nil:
		if g.HTTP.Timeout == 0 {
			g.HTTP.Timeout = Duration(DefaultGuardTimeout)
		}
		if g.HTTP.OnError == "" {
			g.HTTP.OnError = GuardBlock
		}
	}
}

func (g *Guardrails) validate(v *validator, p string) {
	for _, d := range []struct {
		dir  string
		list []Guardrail
	}{{"input", g.Input}, {"output", g.Output}} {
		dir, list, names := d.dir, d.list, map[string]bool{}
		for i := range list {
			gp := indexPath(p+"."+dir, i)
			list[i].validate(v, gp)
			if n := list[i].Name; n != "" {
				if names[n] {
					v.errorf(gp, "guardrail name %q is used twice in %s: give one a distinct name", n, dir)
				}
				names[n] = true
			}
		}
	}
}

func (g *Guardrail) validate(v *validator, p string) {
	switch kinds := g.kinds(); len(kinds) {
	case 0:
		v.errorf(p, "a guardrail needs one of %s, written as a mapping (pii: {action: redact})", strings.Join([]string{GuardPII, GuardInjection, GuardSize, GuardModel, GuardHTTP}, ", "))
		return
	case 1:
	default:
		v.errorf(p, "a guardrail has exactly one kind, got %s: write each as its own list item", strings.Join(kinds, " and "))
		return
	}
	switch {
	case g.PII != nil:
		seen := map[string]bool{}
		for i, k := range g.PII.Kinds {
			kp := indexPath(p+".pii.kinds", i)
			switch {
			case !slices.Contains(PIIKinds, k):
				v.errorf(kp, "unknown pii kind %q%s: use %s", k, suggestionOnly(k, PIIKinds), strings.Join(PIIKinds, ", "))
			case seen[k]:
				v.errorf(kp, "%q is listed twice", k)
			}
			seen[k] = true
		}
	case g.Injection != nil:
		if t := g.Injection.Threshold; t != nil && (*t <= 0 || *t > 1) {
			v.errorf(p+".injection.threshold", "threshold %s is out of range: use a score above 0 and at most 1", formatFloat(*t))
		}
	case g.Size != nil:
		v.positive(p+".size.max_bytes", g.Size.MaxBytes)
	case g.Model != nil:
		v.modelRef(p+".model.model", g.Model.Model)
		v.duration(p+".model.timeout", g.Model.Timeout)
	case g.HTTP != nil:
		v.url(p+".http.url", g.HTTP.URL)
		v.duration(p+".http.timeout", g.HTTP.Timeout)
	}
}
