package spec

import (
	"fmt"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/troupehq/troupe/spec/expr"
)

// ToolExternal is the type of a tool the client runs: a call pauses the run,
// and the client continues it with the call's result.
const ToolExternal = "external"

// ToolApproval is a tool's approval policies: `approval: required` (one policy
// matching every call), one policy as a mapping, or a list of them, of which
// the first that matches a call decides.
type ToolApproval []ApprovalPolicy

// approvalType is decoded specially: a scalar, a mapping or a list.
var approvalType = reflect.TypeFor[ToolApproval]()

// ApprovalRequired is the short form of approval.
const ApprovalRequired = "required"

// Approval decisions, applied when a pending approval times out.
const (
	DecisionApprove = "approve"
	DecisionReject  = "reject"
)

// ApprovalPolicy says which calls of a tool need a human decision, who may
// give it, and what happens when nobody does in time.
type ApprovalPolicy struct {
	Tools     []string  `yaml:"tools" doc:"mcp only: globs over the server's tool names this policy covers (default all)."`
	When      string    `yaml:"when" doc:"CEL condition over args (map), tool, agent and user; the call needs a decision when it is true (default true)."`
	Approvers Approvers `yaml:"approvers" doc:"Who may decide (default: any key with scope approvals:write)."`
	Timeout   Duration  `yaml:"timeout" doc:"How long a decision may take before default applies (default: no limit)."`
	Default   string    `yaml:"default" enum:"approve,reject" doc:"The decision applied on timeout (default reject)."`
	Reason    string    `yaml:"reason" doc:"Template shown to the approver, such as \"Refund of {{ args.amount }}\"."`

	when   *expr.Expr
	reason *expr.Template
}

// Approvers are who may decide an approval: keys of these users, or keys
// with one of these scopes. Scopes are checked here for their shape only
// (resource:verb or admin): spec imports no server package, and the
// server's auth layer decides which scopes exist.
type Approvers struct {
	Scopes []string `yaml:"scopes" doc:"API key scopes whose holders may decide, such as approvals:write."`
	Users  []string `yaml:"users" doc:"User ids whose keys may decide."`
}

// DefaultApproverScope is who decides when a policy names no approvers.
const DefaultApproverScope = "approvals:write"

// WhenExpr returns the policy's compiled condition, nil for always.
func (p *ApprovalPolicy) WhenExpr() *expr.Expr { return p.when }

// ReasonTemplate returns the policy's compiled reason, nil for none.
func (p *ApprovalPolicy) ReasonTemplate() *expr.Template { return p.reason }

// Covers reports whether the policy applies to a tool named name (the MCP
// server's tool name for mcp tools; globs are path.Match patterns).
func (p *ApprovalPolicy) Covers(name string) bool {
	if len(p.Tools) == 0 {
		return true
	}
	for _, g := range p.Tools {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// ApprovalEnv declares the variables of approval conditions and reasons.
var ApprovalEnv = sync.OnceValues(func() (*expr.Env, error) {
	return expr.NewEnv(
		expr.Var{Name: "args", Type: expr.MapOf(expr.String, expr.Dyn)},
		expr.Var{Name: "tool", Type: expr.String},
		expr.Var{Name: "agent", Type: expr.String},
		expr.Var{Name: "user", Type: expr.String},
	)
})

func (a ToolApproval) applyDefaults() {
	for i := range a {
		if a[i].Default == "" {
			a[i].Default = DecisionReject
		}
		if len(a[i].Approvers.Scopes) == 0 && len(a[i].Approvers.Users) == 0 {
			a[i].Approvers.Scopes = []string{DefaultApproverScope}
		}
	}
}

// approvalPath is the object path of policy i; a single policy written
// without a list has the path of the field itself.
func (t *Tool) approvalPath(i int) string {
	p := t.Path() + ".approval"
	if _, ok := t.positions[indexPath(p, i)]; ok {
		return indexPath(p, i)
	}
	return p
}

// checkApproval compiles each policy's condition and reason once, when the
// document is decoded.
func (t *Tool) checkApproval() Diagnostics {
	var ds Diagnostics
	env, err := ApprovalEnv()
	if err != nil {
		return Diagnostics{{Pos: t.PosOf(t.Path()), Path: t.Path(), Severity: Error, Msg: err.Error()}}
	}
	bad := func(path, src string, err error) {
		pos, msg := t.PosOf(path), err.Error()
		if e, ok := err.(*expr.Error); ok {
			pos, msg = t.scalarPos(path, src, e.Offset), e.Msg
			if strings.HasPrefix(msg, "undeclared reference") {
				msg += "; the variables here are args, tool, agent, user"
			}
		}
		ds = append(ds, Diagnostic{Pos: pos, Path: path, Severity: Error, Msg: msg})
	}
	for i := range t.Approval {
		p := &t.Approval[i]
		base := t.approvalPath(i)
		if p.When != "" {
			x, err := env.Compile(p.When)
			switch {
			case err != nil:
				bad(base+".when", p.When, err)
			case !x.Returns(expr.Bool):
				ds = append(ds, Diagnostic{Pos: t.PosOf(base + ".when"), Path: base + ".when", Severity: Error,
					Msg: fmt.Sprintf("when must be a condition (bool), this expression is %s", x.TypeName())})
			default:
				p.when = x
			}
		}
		if p.Reason != "" {
			tm, err := env.CompileTemplate(p.Reason)
			if err != nil {
				bad(base+".reason", p.Reason, err)
			} else {
				p.reason = tm
			}
		}
	}
	return ds
}

var scopeRE = regexp.MustCompile(`^[a-z][a-z_]*:[a-z][a-z_]*$`)

// validateApproval checks what compiling could not: globs only on mcp tools,
// approvers' shapes, user_input names.
func (t *Tool) validateApproval(v *validator) {
	for i := range t.Approval {
		p := &t.Approval[i]
		base := t.approvalPath(i)
		if len(p.Tools) > 0 && t.Type != ToolMCP {
			v.errorf(base+".tools", "tools globs are only valid on mcp tools (they select the server's tools); remove them or use when")
		}
		for j, g := range p.Tools {
			if _, err := path.Match(g, ""); err != nil {
				v.errorf(indexPath(base+".tools", j), "invalid glob %q: %v", g, err)
			}
		}
		v.approvers(base+".approvers", p.Approvers)
		v.duration(base+".timeout", p.Timeout)
	}
	if t.Type == ToolExternal && len(t.Approval) > 0 {
		v.errorf(t.Path()+".approval", "an external tool always pauses for its result; approval is not needed")
	}
	if len(t.UserInput) > 0 {
		props, _ := t.Parameters["properties"].(map[string]any)
		if t.Type != ToolHTTP && t.Type != ToolExternal {
			v.errorf(t.Path()+".user_input", "user_input needs the tool's parameters: it is only valid on http and external tools")
		}
		for i, name := range t.UserInput {
			if _, ok := props[name]; !ok {
				v.errorf(indexPath(t.Path()+".user_input", i), "user_input %q is not a property in parameters", name)
			}
		}
		v.unique(t.Path()+".user_input", t.UserInput)
	}
}

// approvers checks the shapes of an approval's approvers at path (tool
// policies and workflow approval steps).
func (v *validator) approvers(path string, a Approvers) {
	for j, s := range a.Scopes {
		switch {
		case s != "admin" && !scopeRE.MatchString(s):
			v.errorf(indexPath(path+".scopes", j), "invalid scope %q: write resource:verb, such as approvals:write", s)
		case len(v.set.scopes) > 0 && !slices.Contains(v.set.scopes, s):
			v.errorf(indexPath(path+".scopes", j), "unknown scope %q: must be one of %s%s", s, strings.Join(v.set.scopes, ", "), suggestionOnly(s, v.set.scopes))
		}
	}
	for j, u := range a.Users {
		if strings.TrimSpace(u) == "" {
			v.errorf(indexPath(path+".users", j), "empty user id")
		}
	}
}
