package spec_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/expr"
)

func TestToolApprovalForms(t *testing.T) {
	t.Parallel()
	src := `kind: Tool
name: short
type: http
url: https://x.example.com/a
approval: required
---
kind: Tool
name: long
type: http
url: https://x.example.com/a
parameters: {type: object, properties: {amount: {type: number}, to: {type: string}}}
user_input: [to]
approval:
  when: 'args.amount > 100'
  approvers: {users: [alice]}
  timeout: 1h
  default: approve
  reason: 'Refund of {{ args.amount }}'
---
kind: Tool
name: gh
type: mcp
command: srv
approval:
  - tools: ["delete_*"]
  - when: 'tool == "merge"'
    approvers: {scopes: [admin]}
---
kind: Tool
name: pick
type: external
parameters: {type: object, properties: {path: {type: string}}}
`
	set := spec.NewSet([]*spec.File{spec.ParseFile("t.yaml", []byte(src), testEnv)}, testBuiltins...)
	require.Empty(t, set.Diagnostics().Errors())

	short := set.Tool("short").Approval
	require.Len(t, short, 1)
	require.Nil(t, short[0].WhenExpr())
	require.Equal(t, spec.DecisionReject, short[0].Default)
	require.Equal(t, []string{spec.DefaultApproverScope}, short[0].Approvers.Scopes)

	long := set.Tool("long")
	require.Len(t, long.Approval, 1)
	p := long.Approval[0]
	require.Equal(t, []string{"alice"}, p.Approvers.Users)
	require.Empty(t, p.Approvers.Scopes)
	require.Equal(t, spec.DecisionApprove, p.Default)
	require.Equal(t, []string{"to"}, long.UserInput)
	for _, tc := range []struct {
		amount float64
		want   bool
	}{{50, false}, {100, false}, {100.5, true}} {
		ok, err := p.WhenExpr().EvalBool(t.Context(), expr.Vars{"args": map[string]any{"amount": tc.amount}, "tool": "long", "agent": "a", "user": ""})
		require.NoError(t, err)
		require.Equal(t, tc.want, ok, "amount %v", tc.amount)
	}
	reason, err := p.ReasonTemplate().Render(t.Context(), expr.Vars{"args": map[string]any{"amount": 120.0}, "tool": "long", "agent": "a", "user": ""})
	require.NoError(t, err)
	require.Equal(t, "Refund of 120", reason)

	gh := set.Tool("gh").Approval
	require.Len(t, gh, 2)
	require.True(t, gh[0].Covers("delete_repo"))
	require.False(t, gh[0].Covers("list_repos"))
	require.True(t, gh[1].Covers("anything"))
	require.Equal(t, spec.ToolExternal, set.Tool("pick").Type)
}

// TestApproverScopesKnown: given the server's scopes, a policy naming
// another is an error with a suggestion; without them only the shape is
// checked.
func TestApproverScopesKnown(t *testing.T) {
	t.Parallel()
	src := []byte("kind: Tool\nname: t\ntype: http\nurl: https://x.example.com\napproval: {approvers: {scopes: [approvals:wirte]}}\n")
	file := spec.ParseFile("t.yaml", src, testEnv)
	require.Empty(t, spec.NewSet([]*spec.File{file}).Diagnostics().Errors())
	ds := spec.NewSetWith([]*spec.File{file}, spec.SetOptions{ApproverScopes: []string{"agents:run", "approvals:write", "admin"}}).Diagnostics().Errors()
	require.Len(t, ds, 1)
	require.Equal(t, `t.yaml:5:33: tools.t.approval.approvers.scopes[0]: unknown scope "approvals:wirte": must be one of agents:run, approvals:write, admin (did you mean "approvals:write"?)`, ds[0].Error())
}
