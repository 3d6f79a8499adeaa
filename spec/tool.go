package spec

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Tool types.
const (
	ToolHTTP = "http"
	ToolMCP  = "mcp"
	// ToolA2A is a remote A2A agent: called as a tool with a message, and
	// listed in a team's members as "a2a:<tool name>".
	ToolA2A = "a2a"
)

// A2AMemberPrefix marks a team member that is a remote A2A agent: the rest
// names a Tool of type a2a.
const A2AMemberPrefix = "a2a:"

// DefaultA2ATimeout bounds one call of a remote A2A agent, which runs a
// whole agent turn.
const DefaultA2ATimeout = 5 * time.Minute

// BuiltinTool describes a tool the engine provides by name. Agents may list it
// without a Tool document (it then runs with its defaults), and a Tool document
// whose type is its name configures an instance of it with the fields in
// Options. The engine's tool registry supplies these (spec imports no engine
// package), so adding a builtin never edits this package.
type BuiltinTool struct {
	Name string
	// Options are the Tool document fields (YAML keys) the builtin reads,
	// such as allowed_hosts for http_fetch.
	Options []string
}

// Tool declares an HTTP endpoint, an MCP server, or a configured instance of a
// builtin tool, that agents may call.
type Tool struct {
	Meta `yaml:",inline"`

	// Type has no enum tag: besides http and mcp it may name any builtin the
	// engine registered, which validate checks against the Set's builtins.
	Type string `yaml:"type" spec:"required" doc:"http: one declarative HTTP call; mcp: every tool of an MCP server; a2a: a remote A2A agent (url of its agent card or endpoint); a builtin tool's name (such as http_fetch): that builtin with the options set here."`

	// Shared by http and mcp (streamable HTTP transport).
	URL     string            `yaml:"url" doc:"http: URL template with {param} placeholders; mcp: streamable HTTP endpoint; a2a: the remote agent's card (…/agent-card.json), its base URL (the card is at /.well-known/agent-card.json under it) or its JSON-RPC endpoint."`
	Headers map[string]string `yaml:"headers" doc:"HTTP headers; use ${VAR} for secrets."`
	Timeout Duration          `yaml:"timeout" doc:"Limit for one call (default 30s)."`

	// http only.
	Method       string     `yaml:"method" enum:"GET,POST,PUT,PATCH,DELETE" doc:"HTTP method (default GET)."`
	Parameters   JSONSchema `yaml:"parameters" doc:"JSON Schema (type object) of the arguments; placeholders in url must be properties."`
	AllowedHosts []string   `yaml:"allowed_hosts" doc:"http, a2a and http_fetch: hosts the tool may reach; loopback and private addresses are refused unless listed."`
	MaxResponse  int        `yaml:"max_response" doc:"http and http_fetch: bytes of response body read (default 1048576; http_fetch 2097152)."`

	// mcp only.
	Command string            `yaml:"command" doc:"mcp over stdio: the program to start."`
	Args    []string          `yaml:"args" doc:"mcp over stdio: its arguments."`
	Env     map[string]string `yaml:"env" doc:"mcp over stdio: extra environment variables."`
	Allow   []string          `yaml:"allow" doc:"mcp: only these server tools are offered to agents (default all)."`

	// Control points (any type).
	Approval  ToolApproval `yaml:"approval" doc:"Calls that need a human decision before they run: required, a policy (tools, when, approvers, timeout, default, reason) or a list of policies (first match wins)."`
	UserInput []string     `yaml:"user_input" doc:"http and external: parameters asked of the user, not the model; a call pauses until they are filled."`
}

// Tool defaults.
const (
	DefaultMaxResponse = 1 << 20
	DefaultToolMethod  = http.MethodGet
)

func (t *Tool) applyDefaults() {
	t.Approval.applyDefaults()
	// A builtin's defaults belong to the builtin (http_fetch waits 15s, not
	// 30s), so only the document types defined here get them.
	if t.Timeout == 0 && (t.Type == ToolHTTP || t.Type == ToolMCP) {
		t.Timeout = Duration(DefaultToolTimeout)
	}
	if t.Timeout == 0 && t.Type == ToolA2A {
		t.Timeout = Duration(DefaultA2ATimeout)
	}
	if t.Type == ToolHTTP {
		if t.Method == "" {
			t.Method = DefaultToolMethod
		}
		if t.MaxResponse == 0 {
			t.MaxResponse = DefaultMaxResponse
		}
	}
}

var placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)

// Placeholders returns the {param} names in an HTTP tool's URL template.
func (t *Tool) Placeholders() []string {
	var out []string
	for _, m := range placeholderRE.FindAllStringSubmatch(t.URL, -1) {
		out = append(out, m[1])
	}
	return out
}

// check compiles the approval policies' expressions once, at decode.
func (t *Tool) check() Diagnostics { return t.checkApproval() }

func (t *Tool) validate(v *validator) {
	p := t.Path()
	v.duration(p+".timeout", t.Timeout)
	t.validateApproval(v)
	switch t.Type {
	case ToolExternal:
		for _, f := range t.fields() {
			if f.set && f.name != "parameters" {
				v.errorf(p+"."+f.name, "field %s is not valid for type external: the client runs the tool", f.name)
			}
		}
		v.schema(p+".parameters", t.Parameters, true)
	case ToolHTTP:
		for _, f := range []struct {
			name string
			set  bool
		}{{"command", t.Command != ""}, {"args", len(t.Args) > 0}, {"env", len(t.Env) > 0}, {"allow", len(t.Allow) > 0}} {
			if f.set {
				v.errorf(p+"."+f.name, "field %s is only valid for type mcp", f.name)
			}
		}
		if t.URL == "" {
			v.errorf(p, "missing required field \"url\" for type http")
		} else {
			v.urlTemplate(p+".url", t.URL)
		}
		v.schema(p+".parameters", t.Parameters, true)
		props, _ := t.Parameters["properties"].(map[string]any)
		for _, ph := range t.Placeholders() {
			if _, ok := props[ph]; !ok {
				v.errorf(p+".url", "placeholder {%s} is not a property in parameters", ph)
			}
		}
		v.nonNegative(p+".max_response", t.MaxResponse)
		for i, h := range t.AllowedHosts {
			if h == "" || strings.ContainsAny(h, "/ ") {
				v.errorf(indexPath(p+".allowed_hosts", i), "invalid host %q: write a host name or host:port", v.display(indexPath(p+".allowed_hosts", i), h))
			}
		}
	case ToolA2A:
		for _, f := range t.fields() {
			if f.set && !slices.Contains([]string{"url", "headers", "timeout", "allowed_hosts"}, f.name) {
				v.errorf(p+"."+f.name, "field %s is not valid for type a2a (fields: url, headers, timeout, allowed_hosts)", f.name)
			}
		}
		if t.URL == "" {
			v.errorf(p, "missing required field \"url\" for type a2a: the remote agent's card or endpoint")
		} else {
			v.url(p+".url", t.URL)
		}
		t.validateHosts(v)
	case ToolMCP:
		for _, f := range []struct {
			name string
			set  bool
		}{{"method", t.Method != ""}, {"parameters", t.Parameters != nil}, {"allowed_hosts", len(t.AllowedHosts) > 0}, {"max_response", t.MaxResponse != 0}} {
			if f.set {
				v.errorf(p+"."+f.name, "field %s is only valid for type http", f.name)
			}
		}
		switch {
		case t.Command == "" && t.URL == "":
			v.errorf(p, "mcp tool needs either command (stdio) or url (streamable HTTP)")
		case t.Command != "" && t.URL != "":
			v.errorf(p+".url", "mcp tool has both command and url: choose stdio (command) or streamable HTTP (url)")
		case t.URL != "":
			v.url(p+".url", t.URL)
		}
		if t.Command == "" {
			if len(t.Args) > 0 {
				v.errorf(p+".args", "args needs command")
			}
			if len(t.Env) > 0 {
				v.errorf(p+".env", "env needs command")
			}
		} else if len(t.Headers) > 0 {
			v.errorf(p+".headers", "headers are only valid with url")
		}
		v.unique(p+".allow", t.Allow)
	case "":
		// Reported by the shape check as a missing required field.
	default:
		t.validateBuiltin(v)
	}
}

// fields reports which optional fields a document sets, by YAML key, in the
// order they are declared.
func (t *Tool) fields() []struct {
	name string
	set  bool
} {
	return []struct {
		name string
		set  bool
	}{
		{"url", t.URL != ""}, {"headers", len(t.Headers) > 0}, {"timeout", t.Timeout != 0},
		{"method", t.Method != ""}, {"parameters", t.Parameters != nil}, {"allowed_hosts", len(t.AllowedHosts) > 0},
		{"max_response", t.MaxResponse != 0}, {"command", t.Command != ""}, {"args", len(t.Args) > 0},
		{"env", len(t.Env) > 0}, {"allow", len(t.Allow) > 0},
	}
}

// validateBuiltin checks a document that configures a builtin tool: the type
// must be a builtin the engine provides, and only that builtin's options may
// be set.
func (t *Tool) validateBuiltin(v *validator) {
	p := t.Path()
	b, ok := v.set.builtin(t.Type)
	if !ok {
		types := append([]string{ToolHTTP, ToolMCP, ToolA2A, ToolExternal}, v.set.builtinNames()...)
		v.errorf(p+".type", "invalid type %q: must be one of %s%s", v.display(p+".type", t.Type), strings.Join(types, ", "), suggestionOnly(t.Type, types))
		return
	}
	for _, f := range t.fields() {
		if f.set && !slices.Contains(b.Options, f.name) {
			if len(b.Options) == 0 {
				v.errorf(p+"."+f.name, "field %s is not an option of builtin %s, which has none", f.name, b.Name)
			} else {
				v.errorf(p+"."+f.name, "field %s is not an option of builtin %s (options: %s)", f.name, b.Name, strings.Join(b.Options, ", "))
			}
		}
	}
	v.nonNegative(p+".max_response", t.MaxResponse)
	t.validateHosts(v)
}

// validateHosts checks allowed_hosts entries.
func (t *Tool) validateHosts(v *validator) {
	p := t.Path()
	for i, h := range t.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			v.errorf(indexPath(p+".allowed_hosts", i), "invalid host %q: write a host name or host:port", v.display(indexPath(p+".allowed_hosts", i), h))
		}
	}
}
