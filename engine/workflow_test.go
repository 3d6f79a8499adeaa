package engine_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/expr"
)

// TestWorkflowCompiles checks the compiled step tree a workflow runner gets:
// every kind resolved to the snapshot's agents, teams and workflows, with the
// expressions and templates ready to evaluate.
func TestWorkflowCompiles(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../spec/testdata/good/workflow.yaml")
	require.NoError(t, err)
	f := newFolder(t)
	f.write("flow.yaml", string(src))
	s := f.engine().Current()
	require.Empty(t, s.Diagnostics())

	names := []string{}
	for _, w := range s.Workflows() {
		names = append(names, w.Name())
	}
	require.Equal(t, []string{"article", "other"}, names)

	w, ok := s.Workflow("article")
	require.True(t, ok)
	kinds := map[string]string{}
	for _, st := range w.Steps {
		kinds[st.Name] = st.Kind
	}
	require.Equal(t, map[string]string{
		"research": spec.StepAgent, "drafts": spec.StepParallel, "check": spec.StepCondition, "per_section": spec.StepLoop,
		"refine": spec.StepLoop, "route": spec.StepRouter, "pick": spec.StepRouter, "review": spec.StepApproval,
		"short_review": spec.StepApproval, "nested": spec.StepWorkflow,
	}, kinds)

	vars := expr.Vars{
		"input": map[string]any{"topic": "tech today", "sections": []any{"intro", "outro"}},
		"steps": map[string]any{
			"research": map[string]any{"output": "lots of facts", "status": "completed"},
			"long":     map[string]any{"output": "long", "status": "completed"},
			"short":    map[string]any{"output": "short one", "status": "completed"},
			"check":    map[string]any{"output": "published", "status": "completed"},
		},
		"state": map[string]any{},
	}
	research, _ := w.Step("research")
	writer, _ := s.Agent("writer")
	require.Same(t, writer, research.Agent)
	in, err := research.Input.Render(t.Context(), vars)
	require.NoError(t, err)
	require.Equal(t, "Research tech today", in)
	require.Equal(t, 1, research.Retries)
	require.Contains(t, research.SetState, "last_topic")

	long, ok := w.Step("long")
	require.True(t, ok, "nested steps are found by name")
	editors, _ := s.Team("editors")
	require.Same(t, editors, long.Team)

	check, _ := w.Step("check")
	cond, err := check.If.EvalBool(t.Context(), vars)
	require.NoError(t, err)
	require.False(t, cond, "size(research) is not > 100")
	require.Equal(t, "publish", check.Then[0].Name)
	require.Equal(t, "give_up", check.Else[0].Name)

	loop, _ := w.Step("per_section")
	items, err := loop.Over.EvalList(t.Context(), vars)
	require.NoError(t, err)
	require.Equal(t, []any{"intro", "outro"}, items)
	require.Equal(t, "section", loop.As)
	require.Equal(t, 10, loop.Max)
	body := expr.Vars{"section": "intro", "iteration": map[string]any{"index": int64(0)}}
	for k, v := range vars {
		body[k] = v
	}
	in, err = loop.Body[0].Input.Render(t.Context(), body)
	require.NoError(t, err)
	require.Equal(t, "Write intro (1)", in)

	route, _ := w.Step("route")
	choice, err := route.Route.EvalString(t.Context(), vars)
	require.NoError(t, err)
	chosen, ok := route.Choice(choice)
	require.True(t, ok)
	require.Equal(t, "tech", chosen.Name)
	pick, _ := w.Step("pick")
	chooser, _ := s.Agent("chooser")
	require.Same(t, chooser, pick.RouterAgent)

	nested, _ := w.Step("nested")
	other, _ := s.Workflow("other")
	require.Same(t, other, nested.Workflow)

	vars["steps"].(map[string]any)["route"] = map[string]any{"output": "tech take", "status": "completed"}
	out, err := w.Output.Render(t.Context(), vars)
	require.NoError(t, err)
	require.Equal(t, "short one tech take", out)
}

// TestWorkflowReloads checks that workflows reload like the rest: a broken
// edit keeps the last good version serving, and a workflow whose agent stops
// serving falls back with it.
func TestWorkflowReloads(t *testing.T) {
	t.Parallel()
	f := newFolder(t)
	f.write("a.yaml", agentYAML("writer", "v1"))
	flow := func(input string) string {
		return "kind: Workflow\nname: flow\nsteps:\n  - {name: one, agent: writer, input: \"" + input + "\"}\n"
	}
	f.write("flow.yaml", flow("v1 {{ message }}"))
	e := f.engine()
	w1, ok := e.Current().Workflow("flow")
	require.True(t, ok)

	f.write("flow.yaml", flow("v2 {{ steps.later.output }}"))
	e.Load()
	s := e.Current()
	w2, ok := s.Workflow("flow")
	require.True(t, ok)
	require.Same(t, w1.Spec, w2.Spec, "the broken edit does not serve")
	o, _ := s.Object(spec.Key{Kind: spec.KindWorkflow, Name: "flow"})
	require.Equal(t, engine.StatusStale, o.Status)
	require.Contains(t, o.Diagnostics.Error(), `unknown step "later"`)

	f.write("flow.yaml", flow("v3 {{ message }}"))
	e.Load()
	w3, _ := e.Current().Workflow("flow")
	require.Equal(t, "v3 {{ message }}", w3.Steps[0].Input.Source())

	// A new workflow on an agent that does not serve is broken.
	f.write("b.yaml", "kind: Workflow\nname: fresh\nsteps: [{name: x, agent: writer}, {name: y, agent: ghost}]\n")
	e.Load()
	_, ok = e.Current().Workflow("fresh")
	require.False(t, ok)
	o, _ = e.Current().Object(spec.Key{Kind: spec.KindWorkflow, Name: "fresh"})
	require.Equal(t, engine.StatusBroken, o.Status)
}
