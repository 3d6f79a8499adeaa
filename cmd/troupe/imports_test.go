package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The import rules of DESIGN.md §4, checked against the module's real
// package graph. They live here because cmd/troupe is the composition root:
// the one package allowed to import every layer, and so the natural owner of
// a rule about how the layers fit together.
//
// Only production imports count (a package's non-test files, and what they
// pull in). The rules protect what ships: the binary's dependency direction,
// and each vendor SDK having one home that can be swapped out. Tests are
// allowed to reach across, because the testing conventions ask for real
// components: console tests read ClickHouse rows back with clickhouse-go to
// check what the server wrote, engine tests start a real MCP server through
// the go-sdk. Neither makes the shipped packages depend on those SDKs.

const module = "github.com/troupehq/troupe"

// importRule forbids packages matching from to depend on packages matching
// deny. Transitive rules follow the whole import graph (engine must not
// reach the store even through a third package); the vendor rules look at
// direct imports only, since every package that imports the store reaches
// bun through it, which is the point of the store.
type importRule struct {
	name       string
	from       func(pkg string) bool
	deny       func(dep string) bool
	transitive bool
}

// under reports whether pkg is the module package dir or one below it.
func under(dir string) func(string) bool {
	p := module + "/" + dir
	return func(pkg string) bool { return pkg == p || strings.HasPrefix(pkg, p+"/") }
}

// prefixed reports whether pkg is one of the import paths roots or below one.
func prefixed(roots ...string) func(string) bool {
	return func(pkg string) bool {
		for _, r := range roots {
			if pkg == r || strings.HasPrefix(pkg, r+"/") {
				return true
			}
		}
		return false
	}
}

func anyOf(fs ...func(string) bool) func(string) bool {
	return func(pkg string) bool {
		for _, f := range fs {
			if f(pkg) {
				return true
			}
		}
		return false
	}
}

func inModule(pkg string) bool { return pkg == module || strings.HasPrefix(pkg, module+"/") }

// vendorRule gives an SDK its one home: only packages under homes import it.
func vendorRule(sdk string, roots []string, homes ...string) importRule {
	var home []func(string) bool
	for _, h := range homes {
		home = append(home, under(h))
	}
	return importRule{
		name: sdk + " is imported only by " + strings.Join(homes, ", "),
		from: except(inModule, anyOf(home...)),
		deny: prefixed(roots...),
	}
}

// except matches what f matches and allow does not.
func except(f, allow func(string) bool) func(string) bool {
	return func(s string) bool { return f(s) && !allow(s) }
}

// importRules are DESIGN.md §4. Homes that do not exist yet (the job
// package, the Kafka source, console/api and console/ui) are named now, so
// the rule holds the day they are written.
var importRules = []importRule{
	{
		name: "spec imports no Troupe package",
		from: under("spec"),
		// spec/watch and later subpackages may use each other; nothing
		// outside spec.
		deny:       except(inModule, under("spec")),
		transitive: true,
	},
	{
		name: "engine imports no store, console, telemetry, gin, bun or templ",
		from: under("engine"),
		deny: anyOf(under("store"), under("console"), under("telemetry"),
			prefixed("github.com/gin-gonic/gin", "github.com/gin-contrib", "github.com/uptrace/bun", "github.com/a-h/templ")),
		transitive: true,
	},
	{
		name:       "console/api never imports console/ui",
		from:       under("console/api"),
		deny:       under("console/ui"),
		transitive: true,
	},
	vendorRule("bun", []string{"github.com/uptrace/bun"}, "store"),
	vendorRule("clickhouse-go", []string{"github.com/ClickHouse/clickhouse-go", "github.com/ClickHouse/ch-go"}, "telemetry/clickhouse"),
	vendorRule("the Milvus SDK", []string{"github.com/milvus-io/milvus-sdk-go", "github.com/milvus-io/milvus-proto"}, "engine/knowledge/milvus"),
	// The MCP SDK has two homes: the client side (type: mcp tools) and the
	// server side (/mcp), which share nothing but the protocol.
	vendorRule("the MCP SDK", []string{"github.com/modelcontextprotocol/go-sdk"}, "engine/tool/mcp", "console/mcpserver"),
	// The A2A SDK has two homes: the server surface and the client tool
	// (which teams also use for remote members).
	vendorRule("the A2A SDK", []string{"github.com/a2aproject/a2a-go"}, "console/a2a", "engine/tool/a2a"),
	vendorRule("River", []string{"github.com/riverqueue/river"}, "engine/jobs", "store"),
	vendorRule("franz-go", []string{"github.com/twmb/franz-go"}, "engine/knowledge/kafka"),
	vendorRule("the OpenTelemetry SDK", []string{"go.opentelemetry.io/otel", "go.opentelemetry.io/proto/otlp"}, "telemetry/otlp"),
	// spec may import its own subpackages only, and spec/expr is the one
	// home of CEL: every runtime expression is compiled there, with its size
	// and cost limits, so no caller can evaluate an unbounded one.
	vendorRule("cel-go", []string{"github.com/google/cel-go", "cel.dev/expr"}, "spec/expr"),
}

// goPackage is the part of `go list -json` the rules read.
type goPackage struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

// importGraph maps each package to its direct production imports.
type importGraph map[string][]string

// loadImportGraph lists the module's packages and everything they import,
// as the go command resolves them (build constraints of this platform,
// non-test files only).
func loadImportGraph(t *testing.T) importGraph {
	t.Helper()
	goCmd, err := exec.LookPath("go") // go test puts its own go first in PATH
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), goCmd, "list", "-deps", "-json=ImportPath,Imports,Standard", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	g := importGraph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		if !p.Standard {
			g[p.ImportPath] = p.Imports
		}
	}
	return g
}

// violations returns one line per package breaking rule: the package and
// the import chain that reaches the forbidden one.
func (g importGraph) violations(rule importRule) []string {
	var out []string
	for _, pkg := range slices.Sorted(maps.Keys(g)) {
		if !inModule(pkg) || !rule.from(pkg) {
			continue
		}
		if rule.transitive {
			if path := g.pathTo(pkg, rule.deny); path != nil {
				out = append(out, strings.Join(path, " -> "))
			}
			continue
		}
		for _, imp := range g[pkg] {
			if rule.deny(imp) {
				out = append(out, pkg+" -> "+imp)
			}
		}
	}
	return out
}

// pathTo finds the shortest import chain from pkg to a package matching
// deny (breadth first), or nil.
func (g importGraph) pathTo(pkg string, deny func(string) bool) []string {
	prev := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, imp := range g[cur] {
			if _, seen := prev[imp]; seen {
				continue
			}
			prev[imp] = cur
			if deny(imp) {
				var path []string
				for p := imp; p != ""; p = prev[p] {
					path = append(path, p)
				}
				slices.Reverse(path)
				return path
			}
			queue = append(queue, imp)
		}
	}
	return nil
}

// TestImportRules fails when a package of the module breaks one of
// DESIGN.md §4's import rules, naming the chain of imports that does.
func TestImportRules(t *testing.T) {
	t.Parallel()
	g := loadImportGraph(t)
	// The graph must be the real one: a pattern that matched nothing
	// would pass every rule.
	for _, p := range []string{"spec", "engine", "engine/agent", "store", "console", "telemetry/clickhouse", "engine/knowledge/milvus", "engine/tool/mcp"} {
		require.Contains(t, g, module+"/"+p)
	}
	for _, rule := range importRules {
		t.Run(rule.name, func(t *testing.T) {
			t.Parallel()
			v := g.violations(rule)
			require.Empty(t, v, "%s; broken by:\n%s", rule.name, strings.Join(v, "\n"))
		})
	}
}

// TestImportRulesCatchViolations checks each kind of rule on a made-up
// graph, so a rule that can never fire does not pass unnoticed.
func TestImportRulesCatchViolations(t *testing.T) {
	t.Parallel()
	m := func(s string) string { return module + "/" + s }
	g := importGraph{
		m("spec"):                   {"gopkg.in/yaml.v3"},
		m("spec/watch"):             {m("spec")},
		m("engine/agent"):           {m("engine/event")},
		m("engine/event"):           {m("engine/model")},
		m("engine/model"):           {m("store")},
		m("engine/jobs"):            {"github.com/riverqueue/river"},
		m("store"):                  {"github.com/uptrace/bun", "github.com/riverqueue/river/riverdriver"},
		m("store/storetest"):        {"github.com/uptrace/bun"},
		m("console"):                {m("store"), "github.com/uptrace/bun/dialect"},
		m("console/api"):            {m("console/api/wire")},
		m("console/api/wire"):       {m("console/ui/view")},
		m("console/ui/view"):        {"github.com/a-h/templ"},
		m("telemetry/clickhouse"):   {"github.com/ClickHouse/clickhouse-go/v2"},
		m("telemetry"):              {"github.com/ClickHouse/ch-go/proto"},
		m("engine/tool/mcp"):        {"github.com/modelcontextprotocol/go-sdk/mcp"},
		m("console/mcp"):            {"github.com/modelcontextprotocol/go-sdk/mcp"},
		m("engine/knowledge/kafka"): {"github.com/twmb/franz-go/pkg/kgo"},
		m("spec/expr"):              {"github.com/google/cel-go/cel"},
		m("engine/flow"):            {m("spec/expr"), "github.com/google/cel-go/common/types"},
	}
	byName := map[string][]string{}
	for _, r := range importRules {
		if v := g.violations(r); v != nil {
			byName[r.name] = v
		}
	}
	require.Equal(t, map[string][]string{
		"engine imports no store, console, telemetry, gin, bun or templ": {
			m("engine/agent") + " -> " + m("engine/event") + " -> " + m("engine/model") + " -> " + m("store"),
			m("engine/event") + " -> " + m("engine/model") + " -> " + m("store"),
			m("engine/model") + " -> " + m("store"),
		},
		"console/api never imports console/ui": {
			m("console/api") + " -> " + m("console/api/wire") + " -> " + m("console/ui/view"),
			m("console/api/wire") + " -> " + m("console/ui/view"),
		},
		"bun is imported only by store":                                      {m("console") + " -> github.com/uptrace/bun/dialect"},
		"clickhouse-go is imported only by telemetry/clickhouse":             {m("telemetry") + " -> github.com/ClickHouse/ch-go/proto"},
		"the MCP SDK is imported only by engine/tool/mcp, console/mcpserver": {m("console/mcp") + " -> github.com/modelcontextprotocol/go-sdk/mcp"},
		"cel-go is imported only by spec/expr":                               {m("engine/flow") + " -> github.com/google/cel-go/common/types"},
	}, byName)

	g[m("spec")] = append(g[m("spec")], m("engine/model"))
	require.Equal(t, []string{
		m("spec") + " -> " + m("engine/model"),
		m("spec/watch") + " -> " + m("spec") + " -> " + m("engine/model"),
	}, g.violations(importRules[0]))
}
