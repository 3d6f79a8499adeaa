package session_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
)

// liveness is a session.Liveness that records its calls and hands out the
// runs queued for recovery once.
type liveness struct {
	mu      sync.Mutex
	beats   int
	sweeps  int
	pending []session.Run
	left    bool
}

var _ session.Liveness = (*liveness)(nil)

func (l *liveness) Heartbeat(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.beats++
	return nil
}

func (l *liveness) RecoverRuns(context.Context) ([]session.Run, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweeps++
	runs := l.pending
	l.pending = nil
	return runs, nil
}

func (l *liveness) Leave(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.left = true
	return nil
}

func (l *liveness) counts() (beats, sweeps int, left bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.beats, l.sweeps, l.left
}

// Run keeps the replica's heartbeat, reports the runs that the periodic
// recovery fails to the observers (top-level runs, once), and removes the
// heartbeat when it returns.
func TestServiceKeepsReplicaAlive(t *testing.T) {
	t.Parallel()
	l := &liveness{pending: []session.Run{
		{ID: "dead", Status: event.StatusError},
		{ID: "dead-writer-1", ParentRunID: "dead", Status: event.StatusError},
	}}
	obs := newObserver()
	svc := session.New(session.Options{Targets: &targets{}, Store: newMemStore(), Observers: []session.Observer{obs},
		Liveness: l, HeartbeatInterval: 10 * time.Millisecond, RecoverInterval: 20 * time.Millisecond})
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- svc.Run(ctx) }()

	require.Eventually(t, func() bool {
		beats, sweeps, _ := l.counts()
		return beats >= 3 && sweeps >= 2
	}, 5*time.Second, 5*time.Millisecond)
	obs.mu.Lock()
	require.Equal(t, []string{"dead"}, obs.interrupted, "members belong to their team's run; each run once")
	obs.mu.Unlock()
	_, _, left := l.counts()
	require.False(t, left)

	stop()
	require.NoError(t, <-served)
	_, _, left = l.counts()
	require.True(t, left, "the heartbeat is removed by the time Run returns")
}
