package spec

import (
	"net/http"
	"regexp"
	"strings"
)

// Tool types.
const (
	ToolHTTP = "http"
	ToolMCP  = "mcp"
)

// Builtin tools are referenced by name from agents without a Tool document.
var BuiltinTools = []string{"current_time", "calculator", "http_fetch", "knowledge_search"}

// Tool declares an HTTP endpoint or an MCP server whose tools agents may call.
type Tool struct {
	Meta `yaml:",inline"`

	Type string `yaml:"type" spec:"required" enum:"http,mcp" doc:"http: one declarative HTTP call; mcp: every tool of an MCP server."`

	// Shared by http and mcp (streamable HTTP transport).
	URL     string            `yaml:"url" doc:"http: URL template with {param} placeholders; mcp: streamable HTTP endpoint."`
	Headers map[string]string `yaml:"headers" doc:"HTTP headers; use ${VAR} for secrets."`
	Timeout Duration          `yaml:"timeout" doc:"Limit for one call (default 30s)."`

	// http only.
	Method       string     `yaml:"method" enum:"GET,POST,PUT,PATCH,DELETE" doc:"HTTP method (default GET)."`
	Parameters   JSONSchema `yaml:"parameters" doc:"JSON Schema (type object) of the arguments; placeholders in url must be properties."`
	AllowedHosts []string   `yaml:"allowed_hosts" doc:"Hosts the tool may reach; loopback and private addresses are refused unless listed."`
	MaxResponse  int        `yaml:"max_response" doc:"Bytes of response body read (default 1048576)."`

	// mcp only.
	Command string            `yaml:"command" doc:"mcp over stdio: the program to start."`
	Args    []string          `yaml:"args" doc:"mcp over stdio: its arguments."`
	Env     map[string]string `yaml:"env" doc:"mcp over stdio: extra environment variables."`
	Allow   []string          `yaml:"allow" doc:"mcp: only these server tools are offered to agents (default all)."`
}

// Tool defaults.
const (
	DefaultMaxResponse = 1 << 20
	DefaultToolMethod  = http.MethodGet
)

func (t *Tool) applyDefaults() {
	if t.Timeout == 0 {
		t.Timeout = Duration(DefaultToolTimeout)
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

func (t *Tool) validate(v *validator) {
	p := t.Path()
	v.duration(p+".timeout", t.Timeout)
	switch t.Type {
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
	}
}
