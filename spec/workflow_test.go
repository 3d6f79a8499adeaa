package spec_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

// TestWorkflowScopes checks which steps an expression may refer to, case by
// case: what the language promises (documented on spec.Workflow).
func TestWorkflowScopes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, steps, want string // want: "" for no diagnostics
	}{
		{"earlier step", `
  - {name: a, agent: w}
  - {name: b, agent: w, input: "{{ steps.a.output }}"}`, ""},
		{"join sees every branch", `
  - name: p
    parallel:
      - {name: a, agent: w}
      - name: inner
        parallel: [{name: deep, agent: w}]
  - {name: b, agent: w, input: "{{ steps.a.output }} {{ steps.deep.output }} {{ steps.p.output }}"}`, ""},
		{"branch sees what came before the parallel", `
  - {name: a, agent: w}
  - name: p
    parallel: [{name: b, agent: w, input: "{{ steps.a.output }}"}]`, ""},
		{"condition branch sees earlier steps, and its own earlier steps", `
  - {name: a, agent: w}
  - name: c
    condition:
      if: steps.a.status == 'completed'
      then: [{name: b, agent: w, input: "{{ steps.a.output }}"}, {name: b2, agent: w, input: "{{ steps.b.output }}"}]
  - {name: d, agent: w, input: "{{ steps.c.output }}"}`, ""},
		{"until sees the body, set_state sees the step", `
  - name: l
    loop:
      until: steps.b.output == 'DONE'
      max: 3
      steps: [{name: b, agent: w, input: "{{ item }} {{ iteration.index }}"}]
    set_state: {last: steps.l.output}`, ""},
		{"other branch of a condition", `
  - name: c
    condition:
      if: "true"
      then: [{name: a, agent: w}]
      else: [{name: b, agent: w, input: "{{ steps.a.output }}"}]`, `step "a" is in the other branch of condition "c": only one branch runs`},
		{"another choice of a router", `
  - name: r
    router:
      expression: "'a'"
      choices: [{name: a, agent: w}, {name: b, agent: w, input: "{{ steps.a.output }}"}]`, `step "a" is another choice of router "r": only one choice runs`},
		{"inside a loop from outside", `
  - name: l
    loop: {over: "[1]", max: 1, steps: [{name: a, agent: w}]}
  - {name: b, agent: w, input: "{{ steps.a.output }}"}`, `step "a" is inside loop "l" and is not visible outside it: use steps.l.output instead`},
		{"a container from inside", `
  - name: l
    loop: {over: "[1]", max: 1, steps: [{name: a, agent: w, input: "{{ steps.l.output }}"}]}`, `step "l" has not finished when this step runs: it contains it`},
		{"a loop variable outside its loop", `
  - name: l
    loop: {over: "[1]", max: 1, as: x, steps: [{name: a, agent: w}]}
  - {name: b, agent: w, input: "{{ x }}"}`, `undeclared reference to 'x'`},
		{"input on a parallel", `
  - name: p
    input: hi
    parallel: [{name: a, agent: w}]`, `input applies to agent, team and workflow steps, not to a parallel step`},
		{"router with expression and agent", `
  - name: r
    router: {expression: "'a'", agent: w, choices: [{name: a, agent: w}]}`, `write expression or agent, not both`},
		{"loop with over and until", `
  - name: l
    loop: {over: "[1]", until: "true", max: 1, steps: [{name: a, agent: w}]}`, `write over or until, not both`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := "kind: Agent\nname: w\nmodel: echo\n---\nkind: Workflow\nname: flow\nsteps:" + tc.steps + "\n"
			set := spec.NewSet([]*spec.File{spec.ParseFile("flow.yaml", []byte(src), testEnv)}, testBuiltins...)
			if tc.want == "" {
				require.Empty(t, set.Diagnostics())
				require.NotNil(t, set.Workflow("flow"))
				return
			}
			require.Len(t, set.Diagnostics(), 1, set.Diagnostics().Error())
			require.Contains(t, set.Diagnostics()[0].Msg, tc.want)
		})
	}
}

// BenchmarkParseWorkflow is what a reload pays for a changed workflow file:
// decoding, and compiling and checking its 17 expressions and templates (22 CEL sources).
func BenchmarkParseWorkflow(b *testing.B) {
	data, err := os.ReadFile("testdata/good/workflow.yaml")
	require.NoError(b, err)
	for b.Loop() {
		f := spec.ParseFile("workflow.yaml", data, testEnv)
		if len(f.Diagnostics) > 0 {
			b.Fatal(f.Diagnostics)
		}
	}
}
