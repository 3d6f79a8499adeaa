package workflow_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/workflow"
	"github.com/troupehq/troupe/spec"
)

// discardCheckpoints writes nothing: the benchmark leaves the checkpoint
// write out (store.BenchmarkSaveStep measures it).
type discardCheckpoints struct{}

func (discardCheckpoints) Steps(context.Context, string) ([]workflow.Checkpoint, error) {
	return nil, nil
}
func (discardCheckpoints) SaveStep(context.Context, workflow.Checkpoint) error { return nil }

const benchSteps = 10

func benchEngine(b *testing.B) *engine.Engine {
	b.Helper()
	var steps strings.Builder
	for i := range benchSteps {
		in := "go"
		if i > 0 {
			in = fmt.Sprintf("{{ steps.s%d.output }} and more", i-1)
		}
		fmt.Fprintf(&steps, "  - {name: s%d, agent: a, input: %q}\n", i, in)
	}
	yaml := "kind: Agent\nname: a\nmodel: echo\n---\nkind: Workflow\nname: flow\nsteps:\n" + steps.String()
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "w.yaml"), []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	p := fake.New()
	p.Repeat = &fake.Step{Content: "ok"}
	reg := model.NewRegistry()
	reg.Register("echo", func(model.Config) (model.Provider, error) { return p, nil })
	rt := &engine.Runtime{Models: reg, Workflows: func(w *engine.Workflow) agent.Runner {
		return workflow.New(w, workflow.Options{Checkpoints: discardCheckpoints{}})
	}}
	e, err := engine.New(engine.Options{Dirs: []string{dir}, Env: func(string) (string, bool) { return "", false }, Runtime: rt})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// BenchmarkWorkflowStepOverhead measures what a workflow adds to each step
// beyond the step's own agent run: a 10-step workflow on an instant model
// with checkpoints discarded, minus ten runs of the same agent alone
// (reported as overhead-µs/step).
func BenchmarkWorkflowStepOverhead(b *testing.B) {
	e := benchEngine(b)
	snap := e.Current()
	wf, err := snap.Runner(spec.KindWorkflow, "flow")
	if err != nil {
		b.Fatal(err)
	}
	ag, err := snap.Runner(spec.KindAgent, "a")
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	emit := func(event.Event) {}
	var agentNs float64
	b.Run("agent", func(b *testing.B) {
		for b.Loop() {
			if res := ag.Execute(ctx, agent.Input{Message: "go and more", RunID: "r"}, emit); res.Status != event.StatusCompleted {
				b.Fatal(res.Err)
			}
		}
		agentNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("workflow", func(b *testing.B) {
		for b.Loop() {
			if res := wf.Execute(ctx, agent.Input{Message: "go", RunID: "r"}, emit); res.Status != event.StatusCompleted {
				b.Fatal(res.Err)
			}
		}
		perStep := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / benchSteps
		b.ReportMetric(perStep/1000, "µs/step")
		b.ReportMetric((perStep-agentNs)/1000, "overhead-µs/step")
	})
}
