package approval_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/spec"
)

func tools(t testing.TB, src string) *spec.Set {
	t.Helper()
	set := spec.NewSet([]*spec.File{spec.ParseFile("t.yaml", []byte(src), func(string) (string, bool) { return "", false })})
	require.Empty(t, set.Diagnostics().Errors())
	return set
}

func TestGateCheck(t *testing.T) {
	t.Parallel()
	set := tools(t, `kind: Tool
name: refund
type: http
url: https://x.example.com/r
parameters: {type: object, properties: {amount: {type: number}, to: {type: string, description: Recipient}, n: {type: integer}}}
user_input: [to, n]
approval:
  - when: 'args.amount > 1000'
    approvers: {users: [cfo]}
    timeout: 1h
    default: approve
    reason: 'big: {{ args.amount }}'
  - when: 'args.amount > 100 && user != "root"'
    reason: 'medium for {{ user }}'
---
kind: Tool
name: gh
type: mcp
command: srv
approval: {tools: ["delete_*"]}
---
kind: Tool
name: pick
type: external
---
kind: Tool
name: plain
type: http
url: https://x.example.com/p
`)
	refund := approval.NewGate(set.Tool("refund"))
	require.Equal(t, []string{"to", "n"}, refund.UserInput())
	require.Nil(t, approval.NewGate(set.Tool("plain")), "a tool without control points has no gate")
	tests := []struct {
		name    string
		gate    *approval.Gate
		call    approval.Call
		confirm bool
		reason  string
		users   []string
		ext     bool
		input   bool
	}{
		{name: "small refund: user input only", gate: refund, call: approval.Call{Tool: "refund", Args: map[string]any{"amount": 50.0}, User: "u"}, input: true},
		{name: "medium refund", gate: refund, call: approval.Call{Tool: "refund", Args: map[string]any{"amount": 500.0}, User: "u"}, confirm: true, reason: "medium for u", users: nil, input: true},
		{name: "medium refund by root", gate: refund, call: approval.Call{Tool: "refund", Args: map[string]any{"amount": 500.0}, User: "root"}, input: true},
		{name: "big refund: first match wins", gate: refund, call: approval.Call{Tool: "refund", Args: map[string]any{"amount": 5000.0}}, confirm: true, reason: "big: 5000", users: []string{"cfo"}, input: true},
		{name: "missing argument fails closed", gate: refund, call: approval.Call{Tool: "refund", Args: map[string]any{}}, confirm: true, input: true},
		{name: "mcp glob matches", gate: approval.NewGate(set.Tool("gh")), call: approval.Call{Tool: "delete_repo"}, confirm: true},
		{name: "mcp glob does not match", gate: approval.NewGate(set.Tool("gh")), call: approval.Call{Tool: "list_repos"}},
		{name: "external", gate: approval.NewGate(set.Tool("pick")), call: approval.Call{Tool: "pick"}, ext: true},
		{name: "nil gate", gate: nil, call: approval.Call{Tool: "plain"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := tc.gate.Check(t.Context(), tc.call)
			require.NoError(t, err)
			if !tc.confirm && !tc.ext && !tc.input {
				require.Nil(t, n)
				return
			}
			require.NotNil(t, n)
			require.Equal(t, tc.confirm, n.Exec.RequiresConfirmation)
			require.Equal(t, tc.ext, n.Exec.ExternalExecutionRequired)
			require.Equal(t, tc.input, n.Exec.RequiresUserInput)
			if tc.reason != "" {
				require.Equal(t, tc.reason, n.Exec.Reason)
			}
			if tc.users != nil {
				require.Equal(t, tc.users, n.Approvers.Users)
			}
			if tc.input {
				require.Equal(t, "to", n.Exec.UserInputSchema[0].Name)
				require.Equal(t, "str", n.Exec.UserInputSchema[0].FieldType)
				require.Equal(t, "Recipient", n.Exec.UserInputSchema[0].Description)
				require.Equal(t, "int", n.Exec.UserInputSchema[1].FieldType)
			}
		})
	}
}

func TestViewerAndMissing(t *testing.T) {
	t.Parallel()
	rec := &approval.Record{Approvers: spec.Approvers{Users: []string{"alice"}, Scopes: []string{"approvals:write"}}}
	for _, tc := range []struct {
		v    *approval.Viewer
		want bool
	}{
		{nil, true},
		{&approval.Viewer{UserID: "alice"}, true},
		{&approval.Viewer{UserID: "bob"}, false},
		{&approval.Viewer{UserID: "bob", Scopes: []string{"approvals:write"}}, true},
		{&approval.Viewer{Scopes: []string{"agents:run"}}, false},
	} {
		require.Equal(t, tc.want, tc.v.CanDecide(rec), "%+v", tc.v)
	}
	require.Equal(t, "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8", approval.Sign("key", []byte("The quick brown fox jumps over the lazy dog")))
}
