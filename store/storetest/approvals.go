package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	enginesession "github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// pauseRun starts run id of agent clerk for user and pauses it on calls,
// each needing a confirmation by approvers.
func pauseRun(t *testing.T, db *store.DB, id, user string, t0 int, approvers spec.Approvers, calls ...string) []approval.Record {
	t.Helper()
	ctx := t.Context()
	_, r := startRun(t, db, agentSession("s-"+id, user, "clerk"), id, "refund", at(0))
	p := &enginesession.Pause{RunID: id, Held: &agent.Resume{Messages: []model.Message{{Role: model.RoleUser, Content: "refund"}}}}
	var recs []approval.Record
	for i, c := range calls {
		p.Calls = append(p.Calls, event.ToolExecution{ToolCallID: c, ToolName: "refund", ToolArgs: map[string]any{"n": float64(i)},
			RequiresConfirmation: true, ApprovalID: id + "-" + c})
		recs = append(recs, approval.Record{ID: id + "-" + c, RunID: id, SessionID: "s-" + id, ToolCallID: c, TargetKind: "agent", TargetName: "clerk",
			UserID: user, Tool: "refund", Args: map[string]any{"n": float64(i)}, Reason: "because", Approvers: approvers,
			Status: approval.StatusPending, Default: spec.DecisionReject, CreatedAt: at(t0 + i + 1)})
	}
	require.NoError(t, db.SavePause(ctx, p, recs))
	r.Status = event.StatusPaused
	require.NoError(t, db.FinishRun(ctx, r))
	return recs
}

// testApprovals stores a paused run and its inbox records: listed with
// filters and paging, visible only to their approvers, decided once (a
// concurrent second decision loses and learns who won), continued once.
func testApprovals(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	recs := pauseRun(t, db, "r1", "alice", 0, spec.Approvers{Users: []string{"bob"}, Scopes: []string{"approvals:write"}}, "c1", "c2")
	pauseRun(t, db, "r2", "carol", 5, spec.Approvers{Users: []string{"dan_1"}}, "c1")

	p, err := db.LoadPause(ctx, "r1")
	require.NoError(t, err)
	require.Len(t, p.Calls, 2)
	require.Equal(t, "refund", p.Held.Messages[0].Content)
	_, err = db.LoadPause(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)

	for _, tc := range []struct {
		name  string
		q     approval.Query
		want  []string
		total int
	}{
		{"all, newest first", approval.Query{}, []string{"r2-c1", "r1-c2", "r1-c1"}, 3},
		{"paged", approval.Query{Limit: 2, Page: 2}, []string{"r1-c1"}, 3},
		{"by user", approval.Query{UserID: "carol"}, []string{"r2-c1"}, 1},
		{"by target", approval.Query{TargetKind: "agent", TargetName: "clerk", Status: approval.StatusPending}, []string{"r2-c1", "r1-c2", "r1-c1"}, 3},
		{"other target", approval.Query{TargetKind: "team", TargetName: "clerk"}, nil, 0},
		{"approver user", approval.Query{Viewer: &approval.Viewer{UserID: "bob"}}, []string{"r1-c2", "r1-c1"}, 2},
		{"approver scope", approval.Query{Viewer: &approval.Viewer{UserID: "eve", Scopes: []string{"approvals:write"}}}, []string{"r1-c2", "r1-c1"}, 2},
		// LIKE wildcards in a user id match only themselves.
		{"underscore", approval.Query{Viewer: &approval.Viewer{UserID: "dan_1"}}, []string{"r2-c1"}, 1},
		{"wildcard", approval.Query{Viewer: &approval.Viewer{UserID: "dan%"}}, nil, 0},
		{"no approver", approval.Query{Viewer: &approval.Viewer{UserID: "eve", Scopes: []string{"agents:run"}}}, nil, 0},
		{"empty viewer", approval.Query{Viewer: &approval.Viewer{}}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, total, err := db.ListApprovals(ctx, tc.q)
			require.NoError(t, err)
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			require.Equal(t, tc.want, ids)
			require.Equal(t, tc.total, total)
			n, err := db.CountApprovals(ctx, tc.q)
			require.NoError(t, err)
			require.Equal(t, tc.total, n)
		})
	}
	got, err := db.GetApproval(ctx, "r1-c1", nil)
	require.NoError(t, err)
	require.Equal(t, recs[0].Args, got.Args)
	require.Equal(t, []string{"bob"}, got.Approvers.Users)
	require.Equal(t, at(1), got.CreatedAt)
	require.True(t, got.Deadline.IsZero())
	_, err = db.GetApproval(ctx, "r1-c1", &approval.Viewer{UserID: "carol"})
	require.ErrorIs(t, err, approval.ErrNotFound)

	// Two deciders at once: one wins, the other is told who.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	lefts := make([]int, 2)
	for i, who := range []string{"bob", "eve"} {
		wg.Go(func() {
			_, lefts[i], errs[i] = db.ResolveApproval(ctx, "r1-c1", approval.Decision{Approved: i == 0, By: who, Comment: "by " + who, At: at(10)})
		})
	}
	wg.Wait()
	var won, lost int
	for i, err := range errs {
		if err == nil {
			won = i
			continue
		}
		lost = i
		de, ok := errors.AsType[*approval.DecidedError](err)
		require.True(t, ok, "%v", err)
		require.Contains(t, de.Error(), fmt.Sprintf("by %s", []string{"bob", "eve"}[1-i]))
	}
	require.NotEqual(t, won, lost, "exactly one decision wins: %v", errs)
	require.Equal(t, 1, lefts[won], "one call of the run is still pending")
	got, err = db.GetApproval(ctx, "r1-c1", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"bob", "eve"}[won], got.DecidedBy)
	require.Equal(t, at(10), got.DecidedAt)

	// Continuing records the other confirmation and moves the run once.
	yes := true
	p.Calls[1].Confirmed, p.Calls[1].ConfirmationNote = &yes, "fine"
	run, err := db.ContinuePaused(ctx, "r1", p.Calls, event.StatusPending, "frank")
	require.NoError(t, err)
	require.Equal(t, event.StatusPending, run.Status)
	_, err = db.ContinuePaused(ctx, "r1", p.Calls, event.StatusPending, "frank")
	require.ErrorIs(t, err, store.ErrNotFound, "a run continues once")
	got, err = db.GetApproval(ctx, "r1-c2", nil)
	require.NoError(t, err)
	require.Equal(t, approval.StatusApproved, got.Status)
	require.Equal(t, "frank", got.DecidedBy)
	require.Equal(t, "fine", got.Comment)
	p, err = db.LoadPause(ctx, "r1")
	require.NoError(t, err)
	require.True(t, *p.Calls[1].Confirmed)
	n, err := db.CountApprovals(ctx, approval.Query{Status: approval.StatusPending})
	require.NoError(t, err)
	require.Equal(t, 1, n, "r2's call is still pending")

	// An expired approval applies its default; a deadline round-trips.
	rec, left, err := db.ResolveApproval(ctx, "r2-c1", approval.Decision{Expired: true, By: "timeout", At: time.Now()})
	require.NoError(t, err)
	require.Zero(t, left)
	require.Equal(t, approval.StatusExpired, rec.Status)
	require.False(t, rec.Approved(), "the default is reject")

	// Records go with their session.
	_, err = db.DeleteSessions(ctx, []string{"s-r1"}, store.Filter{})
	require.NoError(t, err)
	_, err = db.GetApproval(ctx, "r1-c1", nil)
	require.ErrorIs(t, err, approval.ErrNotFound)
}

// testProposedApprovals: a proposed learning is an inbox record of a run
// that holds nothing: added once, listed and decided like the others, but
// neither among the run's approvals nor counted as what the run waits for.
func testProposedApprovals(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	pauseRun(t, db, "r1", "alice", 0, spec.Approvers{Scopes: []string{"approvals:write"}}, "c1", "c2")
	rec := approval.Record{ID: "l1", RunID: "r1", SessionID: "s-r1", TargetKind: approval.TargetLearning, TargetName: "clerk", UserID: "alice",
		Tool: "save_learning", Args: map[string]any{"text": "Refunds need a reason.", "knowledge": "lessons"}, Reason: "proposed",
		Approvers: spec.Approvers{Users: []string{"bob"}}, Status: approval.StatusPending, Default: spec.DecisionReject, CreatedAt: at(5)}
	require.NoError(t, db.ProposeApproval(ctx, rec))
	again := rec
	again.Args = map[string]any{"text": "changed"}
	require.NoError(t, db.ProposeApproval(ctx, again), "proposing an id again is a no-op")

	got, err := db.GetApproval(ctx, "l1", &approval.Viewer{UserID: "bob"})
	require.NoError(t, err)
	require.Equal(t, rec.Args, got.Args)
	require.Equal(t, approval.TargetLearning, got.TargetKind)
	require.Equal(t, approval.StatusPending, got.Status)
	require.True(t, got.Deadline.IsZero())
	list, total, err := db.ListApprovals(ctx, approval.Query{TargetKind: approval.TargetLearning})
	require.NoError(t, err)
	require.Equal(t, 1, total)
	require.Equal(t, "l1", list[0].ID)

	own, err := db.RunApprovals(ctx, "r1")
	require.NoError(t, err)
	var ids []string
	for _, r := range own {
		ids = append(ids, r.ID)
	}
	require.Equal(t, []string{"r1-c1", "r1-c2"}, ids)

	_, left, err := db.ResolveApproval(ctx, "r1-c1", approval.Decision{Approved: true, By: "bob", At: at(10)})
	require.NoError(t, err)
	require.Equal(t, 1, left, "the pending learning is not what the run waits for")
	_, left, err = db.ResolveApproval(ctx, "r1-c2", approval.Decision{Approved: true, By: "bob", At: at(10)})
	require.NoError(t, err)
	require.Zero(t, left)
	decided, _, err := db.ResolveApproval(ctx, "l1", approval.Decision{Approved: true, By: "bob", At: at(11)})
	require.NoError(t, err)
	require.Equal(t, approval.StatusApproved, decided.Status)
	_, _, err = db.ResolveApproval(ctx, "l1", approval.Decision{By: "eve", At: at(12)})
	_, ok := errors.AsType[*approval.DecidedError](err)
	require.True(t, ok, "%v", err)
}
