package jobs

import (
	"context"
	"time"

	"github.com/troupehq/troupe/engine/learning"
)

// Learn is the distillation of one completed run into learnings. Its
// arguments are the run's (id, input, answer, tool calls), so uniqueness
// by arguments makes it once per run, done ones included (UniqueDone); an
// attempt that fails (the model, the knowledge base) or dies with its
// process is retried, and merging the same run twice changes nothing.
var Learn = Kind[learning.Job]{MaxAttempts: 5, Timeout: 5 * time.Minute, UniqueDone: true}

// Distiller distils runs (learning.Learner).
type Distiller interface {
	Distil(ctx context.Context, j learning.Job) error
}

var (
	_ Distiller      = (*learning.Learner)(nil)
	_ learning.Queue = LearningQueue{}
)

// RegisterLearning makes clients built on r distil runs with d.
func RegisterLearning(r *Registry, d Distiller) {
	Register(r, Learn, d.Distil)
}

// LearningQueue queues distillations on a client; it is the queue of
// learning.Learner.
type LearningQueue struct{ Client *Client }

// EnqueueLearning queues the distillation of a run, once.
func (q LearningQueue) EnqueueLearning(ctx context.Context, j learning.Job) error {
	// Off the run's path: the run's answer never waits for the insert.
	return EnqueueDeferred(ctx, q.Client, Learn, j)
}
