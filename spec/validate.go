package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// validator checks one document, resolving references against its Set.
type validator struct {
	set   *Set
	meta  *Meta
	diags Diagnostics
}

func (v *validator) add(sev Severity, path, format string, args ...any) {
	v.diags = append(v.diags, Diagnostic{Pos: v.meta.PosOf(path), Path: path, Severity: sev, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) errorf(path, format string, args ...any) { v.add(Error, path, format, args...) }

func (v *validator) display(path, value string) string { return v.meta.Display(path, value) }

// ref checks a reference to a document of kind k (tools may also be builtin).
func (v *validator) ref(path string, k Kind, name string) {
	if name == "" {
		v.errorf(path, "empty %s name", k.Lower())
		return
	}
	if _, ok := v.set.builtin(name); ok && k == KindTool {
		return
	}
	if v.set.lookup(k, name) != nil {
		return
	}
	candidates := v.set.names(k)
	if k == KindTool {
		candidates = append(candidates, v.set.builtinNames()...)
	}
	v.errorf(path, "unknown %s %q%s", k.Lower(), v.display(path, name), suggestionOnly(name, candidates))
}

// modelRef checks an inline provider/model string or the name of a Model document.
func (v *validator) modelRef(path, ref string) {
	if ref == "" {
		return // a missing model is reported by the shape check
	}
	shown := v.display(path, ref)
	if provider, model, ok := SplitModelRef(ref); ok {
		if !slices.Contains(Providers, provider) {
			v.errorf(path, "unknown provider %q in model %q%s; providers: %s", provider, shown, suggestionOnly(provider, Providers), strings.Join(Providers, ", "))
		} else if model == "" {
			v.errorf(path, "model %q names no model: write %s/<model>", shown, provider)
		}
		return
	}
	if v.set.lookup(KindModel, ref) != nil {
		return
	}
	candidates := append(v.set.names(KindModel), EchoModel)
	v.errorf(path, "unknown model %q%s: write provider/model (such as openai/gpt-4o-mini), echo, or the name of a Model document", shown, suggestionOnly(ref, candidates))
}

// member checks a team member, which may be an agent or a team.
func (v *validator) member(path, team, name string) {
	if tool, ok := strings.CutPrefix(name, A2AMemberPrefix); ok {
		t, _ := v.set.lookup(KindTool, tool).(*Tool)
		switch {
		case t == nil:
			var candidates []string
			for _, n := range v.set.names(KindTool) {
				if d, _ := v.set.lookup(KindTool, n).(*Tool); d != nil && d.Type == ToolA2A {
					candidates = append(candidates, A2AMemberPrefix+n)
				}
			}
			v.errorf(path, "unknown member %q: no Tool of type a2a is named %q%s", name, tool, suggestionOnly(name, candidates))
		case t.Type != ToolA2A:
			v.errorf(path, "member %q names tool %q of type %s: a remote member must be a Tool of type a2a", name, tool, t.Type)
		}
		return
	}
	if name == team {
		v.errorf(path, "team %q cannot be a member of itself", team)
		return
	}
	agent, sub := v.set.lookup(KindAgent, name), v.set.lookup(KindTeam, name)
	switch {
	case agent != nil && sub != nil:
		v.errorf(path, "member %q is both an agent and a team: rename one of them", name)
	case agent == nil && sub == nil:
		candidates := append(v.set.names(KindAgent), v.set.names(KindTeam)...)
		v.errorf(path, "unknown member %q: no agent or team has that name%s", name, suggestionOnly(name, candidates))
	}
}

func (v *validator) unique(path string, list []string) {
	seen := map[string]bool{}
	for i, s := range list {
		if seen[s] {
			v.errorf(indexPath(path, i), "%q is listed twice", s)
		}
		seen[s] = true
	}
}

func (v *validator) nonNegative(path string, n int) {
	if n < 0 {
		v.errorf(path, "must not be negative, got %d", n)
	}
}

func (v *validator) positive(path string, n int) {
	if n <= 0 {
		v.errorf(path, "must be positive, got %d", n)
	}
}

func (v *validator) temperature(path string, t *float64) {
	if t != nil && (*t < 0 || *t > 2) {
		v.errorf(path, "temperature %s is out of range: use 0 to 2", formatFloat(*t))
	}
}

func (v *validator) duration(path string, d Duration) {
	if d < 0 {
		v.errorf(path, "duration must not be negative, got %s", d)
	}
}

func (v *validator) url(path, raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf(path, "invalid URL %q: write an absolute http:// or https:// URL", v.display(path, raw))
	}
}

// urlTemplate checks a URL with {param} placeholders by checking it with each
// placeholder replaced by a plain value.
func (v *validator) urlTemplate(path, raw string) {
	if strings.Count(raw, "{") != strings.Count(raw, "}") {
		v.errorf(path, "invalid URL template %q: unbalanced { }", v.display(path, raw))
		return
	}
	u, err := url.Parse(placeholderRE.ReplaceAllString(raw, "x"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf(path, "invalid URL %q: write an absolute http:// or https:// URL", v.display(path, raw))
	}
}

// schema checks that s is a valid JSON Schema; object requires type: object at the
// root, which tool parameters and structured outputs need. Problems point at the
// offending keyword inside the schema.
func (v *validator) schema(path string, s JSONSchema, object bool) {
	if s == nil {
		return
	}
	if loc, msg := schemaProblem(s); msg != "" {
		at := path
		for _, elem := range loc {
			at = keyPath(at, elem)
		}
		v.errorf(at, "invalid JSON Schema: %s", msg)
		return
	}
	if object && s["type"] != "object" {
		v.errorf(path, "the schema's root must have type: object")
	}
}

// schemaVerdict is a remembered result of schemaProblem.
type schemaVerdict struct {
	loc []string
	msg string
}

// schemaVerdicts remembers schemaProblem results by schema content: compiling a
// schema costs far more than the rest of validation, and between two reloads
// almost every schema is unchanged. Bounded by clearing when full.
var schemaVerdicts struct {
	sync.Mutex
	m map[string]schemaVerdict
}

const maxSchemaVerdicts = 4096

// schemaProblem compiles a JSON Schema and returns where and why it is invalid,
// or an empty message.
func schemaProblem(s JSONSchema) (loc []string, msg string) {
	key, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Sprintf("not representable as JSON: %v", err)
	}
	schemaVerdicts.Lock()
	v, ok := schemaVerdicts.m[string(key)]
	schemaVerdicts.Unlock()
	if ok {
		return v.loc, v.msg
	}
	loc, msg = compileSchema(s)
	schemaVerdicts.Lock()
	if schemaVerdicts.m == nil || len(schemaVerdicts.m) >= maxSchemaVerdicts {
		schemaVerdicts.m = map[string]schemaVerdict{}
	}
	schemaVerdicts.m[string(key)] = schemaVerdict{loc, msg}
	schemaVerdicts.Unlock()
	return loc, msg
}

// noLoader refuses every external $ref: a spec's schema must be self-contained,
// and the compiler's default loader would read local files named by a spec.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external $ref %q is not allowed: keep the schema self-contained ($ref to #/$defs/...)", url)
}

func compileSchema(s JSONSchema) (loc []string, msg string) {
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("troupe://schema.json", map[string]any(s)); err != nil {
		return nil, firstLine(err.Error())
	}
	_, err := c.Compile("troupe://schema.json")
	if err == nil {
		return nil, ""
	}
	var se *jsonschema.SchemaValidationError
	if errors.As(err, &se) {
		var ve *jsonschema.ValidationError
		if errors.As(se.Err, &ve) {
			for len(ve.Causes) > 0 {
				ve = ve.Causes[0]
			}
			return ve.InstanceLocation, firstLine(ve.ErrorKind.LocalizedString(englishPrinter))
		}
	}
	return nil, firstLine(err.Error())
}

var englishPrinter = message.NewPrinter(language.English)

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
