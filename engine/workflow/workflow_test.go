package workflow_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/echo"
	"github.com/troupehq/troupe/engine/workflow"
	"github.com/troupehq/troupe/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// counting is the echo model, counting the requests per last user message.
type counting struct {
	model.Provider
	mu    sync.Mutex
	calls map[string]int
	block string // a message whose call blocks until cancelled
}

func (c *counting) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	msg := req.Messages[len(req.Messages)-1].Content
	c.mu.Lock()
	c.calls[msg]++
	c.mu.Unlock()
	if c.block != "" && strings.Contains(msg, c.block) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return c.Provider.Generate(ctx, req, onDelta)
}

func (c *counting) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[msg]
}

type fixture struct {
	eng   *engine.Engine
	model *counting
	cps   *workflow.Memory
}

func newFixture(t *testing.T, yaml string) *fixture {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "w.yaml"), []byte(yaml), 0o600))
	e, _ := echo.New(model.Config{})
	f := &fixture{model: &counting{Provider: e, calls: map[string]int{}}, cps: &workflow.Memory{}}
	reg := model.NewRegistry()
	reg.Register("echo", func(model.Config) (model.Provider, error) { return f.model, nil })
	rt := &engine.Runtime{Models: reg, Workflows: func(w *engine.Workflow) agent.Runner {
		return workflow.New(w, workflow.Options{Checkpoints: f.cps})
	}}
	eng, err := engine.New(engine.Options{Dirs: []string{dir}, Env: func(string) (string, bool) { return "", false }, Runtime: rt})
	require.NoError(t, err)
	t.Cleanup(func() { eng.Close() })
	require.Empty(t, eng.Current().Diagnostics().Errors())
	f.eng = eng
	return f
}

func (f *fixture) run(t *testing.T, ctx context.Context, name, runID, msg string) (*agent.Result, []event.Event) {
	t.Helper()
	var mu sync.Mutex
	var evs []event.Event
	res, _, err := f.eng.Execute(ctx, spec.KindWorkflow, name, agent.Input{Message: msg, RunID: runID, SessionID: "s"}, func(e event.Event) {
		mu.Lock()
		evs = append(evs, e)
		mu.Unlock()
	})
	require.NoError(t, err)
	return res, evs
}

// own returns the workflow's own events (depth 0) as "Type:step" strings.
func own(evs []event.Event) []string {
	var out []string
	for _, e := range evs {
		if e.Depth == 0 {
			out = append(out, string(e.Type)+":"+e.Step)
		}
	}
	return out
}

const agents = `
kind: Agent
name: w
model: echo
---
kind: Agent
name: picker
model: echo
instructions: pick
---
kind: Team
name: t
mode: broadcast
model: echo
members: [w]
`

func TestStepKinds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml, input, output string
		events                    []string
		children                  int
	}{
		{
			name:  "agents in order, templates over earlier outputs",
			yaml:  "steps:\n  - {name: a, agent: w, input: 'one {{ message }}'}\n  - {name: b, agent: w, input: 'two {{ steps.a.output }}'}\n",
			input: "x", output: "Echo: two Echo: one x", children: 2,
			events: []string{"RunStarted:", "StepStarted:a", "StepCompleted:a", "StepStarted:b", "StepCompleted:b", "RunCompleted:"},
		},
		{
			name:  "team and nested workflow",
			yaml:  "steps:\n  - {name: a, team: t, input: 'hi'}\n  - {name: n, workflow: inner, input: 'in'}\n",
			input: "x", output: "Echo: in", children: 2,
			events: []string{"RunStarted:", "StepStarted:a", "StepCompleted:a", "StepStarted:n", "StepCompleted:n", "RunCompleted:"},
		},
		{
			name:  "parallel joins its branches",
			yaml:  "steps:\n  - name: p\n    parallel:\n      - {name: l, agent: w, input: 'left'}\n      - {name: r, agent: w, input: 'right'}\n  - {name: j, agent: w, input: '{{ steps.l.output }}+{{ steps.r.output }}'}\n",
			input: "x", output: "Echo: Echo: left+Echo: right", children: 3,
		},
		{
			name:  "condition runs else",
			yaml:  "steps:\n  - name: c\n    condition:\n      if: \"message == 'yes'\"\n      then: [{name: t1, agent: w, input: 'then'}]\n      else: [{name: e1, agent: w, input: 'else'}]\n",
			input: "no", output: "Echo: else", children: 1,
			events: []string{"RunStarted:", "StepStarted:c", "ConditionExecutionStarted:c", "StepStarted:e1", "StepCompleted:e1", "ConditionExecutionCompleted:c", "StepCompleted:c", "RunCompleted:"},
		},
		{
			name:  "loop over a list",
			yaml:  "steps:\n  - name: l\n    loop:\n      over: \"['a', 'b']\"\n      as: s\n      max: 5\n      steps: [{name: body, agent: w, input: '{{ s }}{{ iteration.index }}'}]\n  - {name: after, agent: w, input: '{{ steps.l.output }}'}\n",
			input: "x", output: `Echo: ["Echo: a0","Echo: b1"]`, children: 3,
		},
		{
			name:  "loop until, bounded by max",
			yaml:  "steps:\n  - name: l\n    loop:\n      until: \"steps.body.output.contains('2')\"\n      max: 5\n      steps: [{name: body, agent: w, input: 'n{{ iteration.index }}'}]\n",
			input: "x", output: `["Echo: n0","Echo: n1","Echo: n2"]`, children: 3,
		},
		{
			name:  "router by expression",
			yaml:  "steps:\n  - name: r\n    router:\n      expression: \"message.startsWith('t') ? 'tech' : 'other'\"\n      choices:\n        - {name: tech, agent: w, input: 'tech'}\n        - {name: other, agent: w, input: 'other'}\n",
			input: "tx", output: "Echo: tech", children: 1,
			events: []string{"RunStarted:", "StepStarted:r", "RouterExecutionStarted:r", "StepStarted:tech", "StepCompleted:tech", "RouterExecutionCompleted:r", "StepCompleted:r", "RunCompleted:"},
		},
		{
			name:  "set_state is readable later",
			yaml:  "steps:\n  - {name: a, agent: w, input: 'x', set_state: {k: \"steps.a.output + '!'\"}}\n  - {name: b, agent: w, input: '{{ state.k }}'}\n",
			input: "x", output: "Echo: Echo: x!", children: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, agents+"---\nkind: Workflow\nname: inner\nsteps: [{name: i1, agent: w}]\n---\nkind: Workflow\nname: flow\n"+tc.yaml)
			res, evs := f.run(t, t.Context(), "flow", "run1", tc.input)
			require.Equal(t, event.StatusCompleted, res.Status, "%v", res.Err)
			require.Equal(t, tc.output, res.Content)
			require.Len(t, res.Members, tc.children)
			if tc.events != nil {
				require.Equal(t, tc.events, own(evs))
			}
			last := evs[len(evs)-1]
			require.Equal(t, event.RunCompleted, last.Type)
			require.Equal(t, "flow", last.WorkflowID)
			for _, e := range evs {
				if e.Depth > 0 {
					require.NotEmpty(t, e.Step, "inner events are tagged with their step: %+v", e)
				}
			}
			cps, err := f.cps.Steps(t.Context(), "run1")
			require.NoError(t, err)
			for _, c := range cps {
				require.Equal(t, event.StatusCompleted, c.Status, c.Path)
				require.Equal(t, 1, c.Attempts, c.Path)
			}
		})
	}
}

// TestResumeSkipsCompletedSteps runs a workflow whose first two steps were
// checkpointed by an earlier (interrupted) execution: they do not run again.
func TestResumeSkipsCompletedSteps(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agents+"---\nkind: Workflow\nname: flow\nsteps:\n"+
		"  - {name: s1, agent: w, input: 'one'}\n  - {name: s2, agent: w, input: 'two {{ steps.s1.output }}'}\n"+
		"  - {name: s3, agent: w, input: 'three {{ steps.s2.output }}'}\n")
	ctx, cancel := context.WithCancel(t.Context())
	f.model.block = "three"
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, _ := f.run(t, ctx, "flow", "r", "x")
		require.Equal(t, event.StatusCancelled, res.Status)
	}()
	require.Eventually(t, func() bool { return f.model.count("three Echo: two Echo: one") == 1 }, testTimeout, tick)
	cancel()
	<-done
	f.model.block = ""
	res, evs := f.run(t, t.Context(), "flow", "r", "x")
	require.Equal(t, event.StatusCompleted, res.Status, "%v", res.Err)
	require.Equal(t, "Echo: three Echo: two Echo: one", res.Content)
	require.Equal(t, 1, f.model.count("one"))
	require.Equal(t, 1, f.model.count("two Echo: one"))
	require.Equal(t, 2, f.model.count("three Echo: two Echo: one"), "the interrupted step runs again")
	require.Equal(t, []string{"RunStarted:", "StepStarted:s3", "StepCompleted:s3", "RunCompleted:"}, own(evs))
	cps, err := f.cps.Steps(t.Context(), "r")
	require.NoError(t, err)
	require.Len(t, cps, 3)
	require.Equal(t, 2, cps[2].Attempts)
}

func TestFailureRetriesAndTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agents+"---\nkind: Workflow\nname: flow\nsteps:\n"+
		"  - {name: slow, agent: w, input: 'block', timeout: 50ms, retries: 1}\n  - {name: never, agent: w, input: 'never'}\n")
	f.model.block = "block"
	res, evs := f.run(t, t.Context(), "flow", "r", "x")
	require.Equal(t, event.StatusError, res.Status)
	require.ErrorContains(t, res.Err, "step slow ran longer than its timeout")
	require.Equal(t, 2, f.model.count("block"), "one retry")
	require.Zero(t, f.model.count("never"))
	require.Equal(t, []string{"RunStarted:", "StepStarted:slow", "StepError:slow", "RunError:"}, own(evs))
}

const (
	testTimeout = 5 * time.Second
	tick        = 5 * time.Millisecond
)

// TestResumeRestoresState: state written by a step that completed before
// the interruption is there for the steps after it when the run resumes.
func TestResumeRestoresState(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agents+"---\nkind: Workflow\nname: flow\nsteps:\n"+
		"  - {name: a, agent: w, input: 'x', set_state: {k: \"steps.a.output + '!'\", n: \"size(steps.a.output)\"}}\n"+
		"  - {name: b, agent: w, input: 'block {{ state.k }} {{ state.n }}'}\n")
	f.model.block = "block"
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, _ := f.run(t, ctx, "flow", "r", "go")
		require.Equal(t, event.StatusCancelled, res.Status)
	}()
	require.Eventually(t, func() bool { return f.model.count("block Echo: x! 7") == 1 }, testTimeout, tick)
	cancel()
	<-done
	f.model.block = ""
	res, _ := f.run(t, t.Context(), "flow", "r", "go")
	require.Equal(t, event.StatusCompleted, res.Status, "%v", res.Err)
	require.Equal(t, "Echo: block Echo: x! 7", res.Content)
	require.Equal(t, 1, f.model.count("x"))
}

// TestResumeReplaysStateInContainers: set_state of steps inside a parallel
// branch, a condition's branch, a loop body and a router's choice is
// replayed on resume, so the state after a resumed run equals the state
// after an uninterrupted one.
func TestResumeReplaysStateInContainers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agents+"---\nkind: Workflow\nname: flow\nsteps:\n"+
		"  - name: p\n    parallel:\n"+
		"      - {name: p1, agent: w, input: 'left', set_state: {left: \"steps.p1.output\"}}\n"+
		"      - {name: p2, agent: w, input: 'right'}\n"+
		"  - name: c\n    condition:\n      if: \"message == 'go'\"\n"+
		"      then: [{name: t1, agent: w, input: 'then', set_state: {then: \"size(steps.t1.output)\"}}]\n"+
		"      else: [{name: e1, agent: w, input: 'else', set_state: {then: \"0\"}}]\n"+
		"  - name: l\n    loop:\n      over: \"['a', 'b', 'c']\"\n      as: s\n      max: 5\n"+
		"      steps: [{name: body, agent: w, input: '{{ s }}', set_state: {sum: \"(has(state.sum) ? state.sum : 0) + iteration.index + 1\", seen: \"(has(state.seen) ? state.seen : '') + s\"}}]\n"+
		"    set_state: {loops: \"size(steps.l.output)\"}\n"+
		"  - name: r\n    router:\n      expression: \"'x'\"\n      choices:\n        - {name: x, agent: w, input: 'x', set_state: {routed: \"steps.x.output\"}}\n"+
		"  - {name: final, agent: w, input: 'final {{ state.left }} {{ state.then }} {{ state.sum }} {{ state.seen }} {{ state.loops }} {{ state.routed }}'}\n")
	want := map[string]any{"left": "Echo: left", "then": int64(10), "sum": int64(6), "seen": "abc", "loops": int64(3), "routed": "Echo: x"}

	res, _ := f.run(t, t.Context(), "flow", "uninterrupted", "go")
	require.Equal(t, event.StatusCompleted, res.Status, "%v", res.Err)
	require.Equal(t, want, res.State)
	finalMsg := "final Echo: left 10 6 abc 3 Echo: x"
	require.Equal(t, 1, f.model.count(finalMsg))

	f.model.mu.Lock()
	f.model.block = "final"
	f.model.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, _ := f.run(t, ctx, "flow", "r", "go")
		require.Equal(t, event.StatusCancelled, res.Status)
	}()
	require.Eventually(t, func() bool { return f.model.count(finalMsg) == 2 }, testTimeout, tick)
	cancel()
	<-done
	f.model.mu.Lock()
	f.model.block = ""
	f.model.mu.Unlock()
	res, evs := f.run(t, t.Context(), "flow", "r", "go")
	require.Equal(t, event.StatusCompleted, res.Status, "%v", res.Err)
	require.Equal(t, want, res.State, "the resumed run's state is the uninterrupted run's")
	require.Equal(t, 3, f.model.count(finalMsg), "the resumed run saw the same state")
	require.Equal(t, 2, f.model.count("a"), "finished loop iterations are not run again")
	require.Equal(t, []string{"RunStarted:", "StepStarted:final", "StepCompleted:final", "RunCompleted:"}, own(evs))
}

// TestResumeReusesNestedRun: a nested workflow interrupted during its second
// inner step resumes in the same child run, its finished inner step not run
// again.
func TestResumeReusesNestedRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agents+"---\nkind: Workflow\nname: inner\nsteps:\n"+
		"  - {name: i1, agent: w, input: 'inner one'}\n  - {name: i2, agent: w, input: 'inner two {{ steps.i1.output }}'}\n"+
		"---\nkind: Workflow\nname: flow\nsteps:\n  - {name: a, agent: w, input: 'first'}\n  - {name: n, workflow: inner}\n")
	f.model.block = "inner two"
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	var first *agent.Result
	go func() {
		defer close(done)
		first, _ = f.run(t, ctx, "flow", "r", "x")
	}()
	require.Eventually(t, func() bool { return f.model.count("inner two Echo: inner one") == 1 }, testTimeout, tick)
	cancel()
	<-done
	require.Equal(t, event.StatusCancelled, first.Status)
	f.model.block = ""
	res, evs := f.run(t, t.Context(), "flow", "r", "x")
	require.Equal(t, event.StatusCompleted, res.Status, "%v", res.Err)
	require.Equal(t, "Echo: inner two Echo: inner one", res.Content)
	require.Equal(t, 1, f.model.count("first"))
	require.Equal(t, 1, f.model.count("inner one"), "the nested run's finished step is not run again")
	require.Equal(t, 2, f.model.count("inner two Echo: inner one"))

	nestedRun := func(r *agent.Result) *agent.Result {
		for _, m := range r.Members {
			if m.Runner == "inner" {
				return m
			}
		}
		return nil
	}
	before, after := nestedRun(first), nestedRun(res)
	require.NotNil(t, before)
	require.NotNil(t, after)
	require.Equal(t, "r-n", after.RunID)
	require.Equal(t, before.RunID, after.RunID, "the resumed step reuses its child run")
	require.Len(t, res.Members, 1, "one child run: the nested workflow's (a finished before)")
	require.Len(t, after.Members, 1, "the nested run executes only its unfinished step")
	for _, e := range evs {
		if e.Type == event.RunStarted && e.Depth == 1 {
			require.Equal(t, "r-n", e.RunID)
		}
	}
	cps, err := f.cps.Steps(t.Context(), "r")
	require.NoError(t, err)
	paths := make([]string, len(cps))
	for i, c := range cps {
		paths[i] = c.Path
		require.Equal(t, event.StatusCompleted, c.Status, c.Path)
	}
	require.Equal(t, []string{"a", "n", "n/i1", "n/i2"}, paths)
}

// TestNestedApproval: an approval inside a nested workflow pauses the
// outer run; once decided, the outer run resumes in the same child run,
// neither run's finished steps executed again.
func TestNestedApproval(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agents+"---\nkind: Workflow\nname: inner\nsteps:\n"+
		"  - {name: draft, agent: w, input: 'draft'}\n  - {name: ok, approval: {message: 'Publish {{ steps.draft.output }}?'}}\n"+
		"  - {name: publish, agent: w, input: 'publish {{ steps.ok.output.comment }}'}\n"+
		"---\nkind: Workflow\nname: flow\nsteps:\n  - {name: a, agent: w, input: 'first'}\n  - {name: n, workflow: inner}\n  - {name: z, agent: w, input: 'last {{ steps.n.output }}'}\n")
	res, evs := f.run(t, t.Context(), "flow", "r", "x")
	require.Equal(t, event.StatusPaused, res.Status, "%v", res.Err)
	require.Equal(t, "Publish Echo: draft?", res.Content)
	require.Equal(t, []string{"RunStarted:", "StepStarted:a", "StepCompleted:a", "StepStarted:n", "RunPaused:"}, own(evs))
	cps, err := f.cps.Steps(t.Context(), "r")
	require.NoError(t, err)
	var waiting *workflow.Checkpoint
	for i := range cps {
		if cps[i].Status == event.StatusPaused {
			waiting = &cps[i]
		}
	}
	require.NotNil(t, waiting)
	require.Equal(t, "n/ok", waiting.Path)
	// The inbox record the run service stores: the step's path in the
	// outer run, where its checkpoint is, and the id derived from both.
	require.Len(t, res.Pending, 1)
	n := res.Pending[0]
	require.Equal(t, "n/ok", n.Exec.ToolCallID)
	require.True(t, n.Exec.RequiresConfirmation)
	require.Equal(t, "Publish Echo: draft?", n.Exec.Reason)
	require.Equal(t, workflow.StepApprovalID("r", "n/ok"), n.Exec.ApprovalID)
	require.Equal(t, []string{spec.DefaultApproverScope}, n.Approvers.Scopes)
	require.Equal(t, spec.DecisionReject, n.Default)

	// The reviewer's decision, as POST …/continue records it.
	waiting.Status, waiting.Output = event.StatusCompleted, []byte(`{"approved": true, "comment": "now"}`)
	require.NoError(t, f.cps.SaveStep(t.Context(), *waiting))
	again, _ := f.run(t, t.Context(), "flow", "r", "x")
	require.Equal(t, event.StatusCompleted, again.Status, "%v", again.Err)
	require.Equal(t, "Echo: last Echo: publish now", again.Content)
	require.Equal(t, 1, f.model.count("first"))
	require.Equal(t, 1, f.model.count("draft"))
	require.Equal(t, 1, f.model.count("publish now"))
	var nestedIDs []string
	for _, r := range append(slices.Clone(res.Members), again.Members...) {
		if r.Runner == "inner" {
			nestedIDs = append(nestedIDs, r.RunID)
		}
	}
	require.Equal(t, []string{"r-n", "r-n"}, nestedIDs, "both executions are the same child run")
}

// TestApprovalStepNeed: an approval step's approvers, timeout and default
// are its inbox record's; pausing again at the step still waiting names the
// same record.
func TestApprovalStepNeed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agents+"---\nkind: Workflow\nname: flow\nsteps:\n"+
		"  - name: ok\n    approval: {message: 'Go?', approvers: {users: [alice], scopes: ['ops:approve']}, timeout: 90s, default: approve}\n")
	res, _ := f.run(t, t.Context(), "flow", "r1", "x")
	require.Equal(t, event.StatusPaused, res.Status, "%v", res.Err)
	require.Len(t, res.Pending, 1)
	n := res.Pending[0]
	require.Equal(t, "ok", n.Exec.ToolCallID)
	require.Equal(t, "Go?", n.Exec.Reason)
	require.Equal(t, []string{"alice"}, n.Approvers.Users)
	require.Equal(t, []string{"ops:approve"}, n.Approvers.Scopes)
	require.Equal(t, 90*time.Second, n.Timeout)
	require.Equal(t, spec.DecisionApprove, n.Default)
	again, _ := f.run(t, t.Context(), "flow", "r1", "x")
	require.Equal(t, n.Exec.ApprovalID, again.Pending[0].Exec.ApprovalID, "the same record")
	other, _ := f.run(t, t.Context(), "flow", "r2", "x")
	require.NotEqual(t, n.Exec.ApprovalID, other.Pending[0].Exec.ApprovalID, "another run's record")
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, n.Exec.ApprovalID)
}

// TestResumeCountsRestoredStepsOnce: a run resumed after an interruption
// (cancelled, or cut off by a crash, which leaves its step RUNNING) reports
// the usage of the whole run: the steps it restores from their checkpoints
// count once, as in a run never interrupted. The cancelled execution
// recorded its interrupted request (no tokens); a crash loses what the
// cut-off attempt used. Nested workflows sum their own steps.
func TestResumeCountsRestoredStepsOnce(t *testing.T) {
	t.Parallel()
	const flow = "---\nkind: Workflow\nname: flow\nsteps:\n" +
		"  - {name: s1, agent: w, input: 'one'}\n  - {name: s2, agent: w, input: 'two {{ steps.s1.output }}'}\n" +
		"  - {name: s3, agent: w, input: 'three {{ steps.s2.output }}'}\n" +
		"---\nkind: Workflow\nname: outer\nsteps:\n" +
		"  - {name: first, agent: w, input: 'first words here'}\n  - {name: inner, workflow: flow, input: 'nested'}\n"
	for _, tc := range []struct {
		name, workflow, blocked, path string
		crash                         bool
		requests                      int
	}{
		{name: "cancelled", workflow: "flow", blocked: "three Echo: two Echo: one", path: "s3", requests: 3},
		{name: "crashed", workflow: "flow", blocked: "three Echo: two Echo: one", path: "s3", crash: true, requests: 3},
		{name: "nested, crashed", workflow: "outer", blocked: "three Echo: two Echo: one", path: "inner/s3", crash: true, requests: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, agents+flow)
			ref, _ := f.run(t, t.Context(), tc.workflow, "ref", "x")
			require.Equal(t, event.StatusCompleted, ref.Status, "%v", ref.Err)
			require.Equal(t, tc.requests, ref.Metrics.ModelRequests)
			require.Positive(t, ref.Metrics.TotalTokens)

			ctx, cancel := context.WithCancel(t.Context())
			f.model.mu.Lock()
			f.model.block = "three"
			f.model.mu.Unlock()
			done := make(chan struct{})
			go func() {
				defer close(done)
				res, _ := f.run(t, ctx, tc.workflow, "r", "x")
				require.Equal(t, event.StatusCancelled, res.Status)
			}()
			require.Eventually(t, func() bool { return f.model.count(tc.blocked) == 2 }, testTimeout, tick)
			cancel()
			<-done
			f.model.mu.Lock()
			f.model.block = ""
			f.model.mu.Unlock()
			if tc.crash {
				// A killed process leaves its step RUNNING, without usage.
				cps, err := f.cps.Steps(t.Context(), "r")
				require.NoError(t, err)
				for _, c := range cps {
					if c.Status == event.StatusCancelled {
						c.Status, c.Metrics, c.Error = event.StatusRunning, event.Metrics{}, ""
						require.NoError(t, f.cps.SaveStep(t.Context(), c))
					}
				}
			}
			res, _ := f.run(t, t.Context(), tc.workflow, "r", "x")
			require.Equal(t, event.StatusCompleted, res.Status, "%v", res.Err)
			require.Equal(t, 3, f.model.count(tc.blocked), "only the interrupted step ran again")
			got, want := res.Metrics, ref.Metrics
			got.Duration, want.Duration, got.TimeToFirstToken, want.TimeToFirstToken = 0, 0, 0, 0
			if !tc.crash {
				// The cancelled execution recorded its step's request,
				// which was made (and answered nothing).
				want.ModelRequests++
			}
			require.Equal(t, want, got)

			cps, err := f.cps.Steps(t.Context(), "r")
			require.NoError(t, err)
			for _, c := range cps {
				require.Equal(t, event.StatusCompleted, c.Status, c.Path)
				require.Positive(t, c.Metrics.ModelRequests, "step %s records its usage", c.Path)
			}
		})
	}
}

// TestRetriedStepCountsEveryAttempt: a step's failed attempts cost what
// they used, and a run resumed after a crash between attempts still counts
// the attempts that ended before it.
func TestRetriedStepCountsEveryAttempt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, agents+"---\nkind: Workflow\nname: flow\nsteps:\n"+
		"  - {name: s1, agent: w, input: 'one two'}\n")
	// A checkpoint as a crash leaves it: attempt 2 RUNNING, attempt 1's
	// usage recorded before it started.
	prior := event.Metrics{InputTokens: 7, OutputTokens: 3, TotalTokens: 10, ModelRequests: 1}
	require.NoError(t, f.cps.SaveStep(t.Context(), workflow.Checkpoint{RunID: "r", Path: "s1", Status: event.StatusRunning, Attempts: 2, Metrics: prior, StartedAt: time.Now(), UpdatedAt: time.Now()}))
	ref, _ := f.run(t, t.Context(), "flow", "ref", "x")
	res, _ := f.run(t, t.Context(), "flow", "r", "x")
	require.Equal(t, event.StatusCompleted, res.Status, "%v", res.Err)
	want := ref.Metrics
	want.Add(prior)
	got := res.Metrics
	got.Duration, want.Duration, got.TimeToFirstToken, want.TimeToFirstToken = 0, 0, 0, 0
	require.Equal(t, want, got)
	cps, err := f.cps.Steps(t.Context(), "r")
	require.NoError(t, err)
	require.Len(t, cps, 1)
	require.Equal(t, 3, cps[0].Attempts)
	require.Equal(t, want.TotalTokens, cps[0].Metrics.TotalTokens, "the checkpoint holds every attempt's usage")
}
