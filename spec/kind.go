package spec

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Kind names a document type. It is the value of the kind key.
type Kind string

// The document kinds of the language.
const (
	KindAgent     Kind = "Agent"
	KindTeam      Kind = "Team"
	KindTool      Kind = "Tool"
	KindKnowledge Kind = "Knowledge"
	KindModel     Kind = "Model"
	KindWorkflow  Kind = "Workflow"
	KindTrigger   Kind = "Trigger"
	KindBudget    Kind = "Budget"
)

// Kinds lists every kind in the order they are shown to users.
var Kinds = []Kind{KindAgent, KindTeam, KindTool, KindKnowledge, KindModel, KindWorkflow, KindTrigger, KindBudget}

// Plural is the first element of an object path: agents.support.tools[1].
func (k Kind) Plural() string {
	switch k {
	case KindKnowledge:
		return "knowledge"
	default:
		return strings.ToLower(string(k)) + "s"
	}
}

// Lower is the kind as a noun in messages ("unknown agent").
func (k Kind) Lower() string { return strings.ToLower(string(k)) }

// newDocument returns an empty document of kind k, or nil for an unknown kind.
func newDocument(k Kind) Document {
	switch k {
	case KindAgent:
		return new(Agent)
	case KindTeam:
		return new(Team)
	case KindTool:
		return new(Tool)
	case KindKnowledge:
		return new(Knowledge)
	case KindModel:
		return new(Model)
	case KindWorkflow:
		return new(Workflow)
	case KindTrigger:
		return new(Trigger)
	case KindBudget:
		return new(Budget)
	}
	return nil
}

// Key identifies an object across the folder: names are unique per kind.
type Key struct {
	Kind Kind
	Name string
}

func (k Key) String() string { return k.Kind.Plural() + "." + k.Name }

// Document is one decoded YAML document of any kind.
//
// Documents returned by a Loader are shared between Sets and must never be
// modified by callers.
type Document interface {
	Header() *Meta
	applyDefaults()
	validate(v *validator)
}

// checker is a document with checks that need nothing but the document
// itself (a workflow compiles its expressions). They run once, when the
// document is decoded, before it is shared between Sets.
type checker interface {
	check() Diagnostics
}

// Meta holds the fields every document has, plus where the document came from.
type Meta struct {
	Kind        Kind   `yaml:"kind" spec:"required" doc:"Document kind: Agent, Team, Tool, Knowledge, Model, Workflow, Trigger or Budget."`
	Name        string `yaml:"name" spec:"required" doc:"Unique name within the kind: lower-case letters, digits, - and _."`
	Version     int    `yaml:"version" doc:"Language version of this document; only 1 exists."`
	Description string `yaml:"description" doc:"What this object is for; shown in the API, OpenAPI and console."`

	pos       Pos                   // position of the document's mapping
	index     int                   // document index within its file
	positions map[string]Pos        // object path → position of its value
	sources   map[string]string     // object path → raw text, for values interpolated from the environment
	envValues map[string][]string   // object path → the environment's values substituted there
	diags     Diagnostics           // problems found within this document alone
	hash      string                // hash of the decoded content, independent of position
	styles    map[string]yaml.Style // object path → style of a quoted or block string scalar, to position errors inside it
}

// Header returns the document's common fields and origin.
func (m *Meta) Header() *Meta { return m }

// Key returns the document's identity.
func (m *Meta) Key() Key { return Key{m.Kind, m.Name} }

// Pos returns where the document starts.
func (m *Meta) Pos() Pos { return m.pos }

// Diagnostics returns the problems found within the document alone (not those
// about references to other documents; see Set.Diagnostics).
func (m *Meta) Diagnostics() Diagnostics { return m.diags }

// Hash identifies the decoded content of the document: two documents with the same
// hash behave the same, wherever they stand in the folder.
func (m *Meta) Hash() string { return m.hash }

// Path returns the object path prefix of this document, such as agents.support.
func (m *Meta) Path() string {
	if validName(m.Name) {
		return m.Kind.Plural() + "." + m.Name
	}
	return fmt.Sprintf("%s[%d]", m.Kind.Plural(), m.index)
}

// PosOf returns the position of the value at an object path, falling back to the
// nearest enclosing value that has one.
func (m *Meta) PosOf(path string) Pos {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := m.positions[p]; ok {
			return pos
		}
	}
	return m.pos
}

// Display returns how the value at path may be shown to people: the raw source
// text (such as ${OPENAI_API_KEY}) when it came from the environment, else value.
// Everything that prints spec values goes through it so secrets never leak.
func (m *Meta) Display(path, value string) string {
	if raw, ok := m.sources[path]; ok {
		return raw
	}
	return value
}

// Interpolated reports whether the value at path came from the environment.
func (m *Meta) Interpolated(path string) bool {
	_, ok := m.sources[path]
	return ok
}

// AllEnvValues returns every value the environment supplied to the
// document (see EnvValues).
func (m *Meta) AllEnvValues() []string {
	var out []string
	for _, vs := range m.envValues {
		out = append(out, vs...)
	}
	return out
}

// EnvValues returns the values the environment supplied (through ${VAR}) at
// path and below it, such as every variable's value in a tool's headers for
// path "tools.api.headers". Specs bring credentials in this way, so these are
// what a component must keep out of what it shows or stores (an upstream that
// echoes its Authorization header). Defaults written in the file are not
// included: they are in the file for anyone to read.
func (m *Meta) EnvValues(path string) []string {
	var out []string
	for p, vs := range m.envValues {
		if p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			out = append(out, vs...)
		}
	}
	return out
}

// parentPath strips the last element of an object path.
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func validName(s string) bool { return nameRE.MatchString(s) }

// ValidName reports whether s may name a document: lower-case letters,
// digits, '-' and '_', starting with a letter or digit, at most 63 bytes.
func ValidName(s string) bool { return validName(s) }

// Duration is a time.Duration written as a Go duration string ("30s", "1m30s").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration the way it is written in YAML.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// JSONSchema is a JSON Schema object written inline in YAML.
type JSONSchema map[string]any

// formatFloat prints a number the way YAML users wrote it.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
