package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/store"
)

// overviewRun is a run of the overview tests: a top-level run in its own
// session, or with parent set a team member's run in its parent's session.
type overviewRun struct {
	id, user, parent string
	team             bool // a team's run rather than an agent's
	created          time.Time
	status           event.Status  // RunRunning leaves it running
	latency          time.Duration // updated_at - created_at once finished
}

func seedOverview(t *testing.T, db *store.DB, runs []overviewRun) {
	t.Helper()
	sessions := map[string]string{} // run id → session id
	for _, o := range runs {
		s := agentSession("s-"+o.id, o.user, "helper")
		if o.team {
			s.Type, s.ComponentID = store.SessionTeam, "crew"
		}
		r := &store.Run{ID: o.id, Input: "question " + o.id, CreatedAt: o.created, Model: "gpt-x", Provider: "openai"}
		if o.parent != "" {
			s = &store.Session{ID: sessions[o.parent], Type: store.SessionTeam, ComponentID: "crew", UserID: o.user}
			r.ParentRunID, r.ComponentID, r.Type = o.parent, "writer", store.SessionAgent
		}
		require.NoError(t, db.StartRun(t.Context(), s, r))
		sessions[o.id] = s.ID
		if o.status != event.StatusRunning {
			finishRun(t, db, r, o.status, o.created.Add(o.latency))
		}
	}
}

func testRunActivity(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	us := time.Microsecond
	seedOverview(t, db, []overviewRun{
		// Before the window, by a microsecond.
		{id: "early", user: "alice", created: at(0).Add(-us), status: event.StatusCompleted, latency: time.Second},
		// [0s, 100s): the first microsecond counts; latencies to the microsecond.
		{id: "a1", user: "alice", created: at(0), status: event.StatusCompleted, latency: 2500 * time.Millisecond},
		{id: "b1", user: "bob", created: at(10), status: event.StatusError, latency: time.Second + 250*us},
		// [100s, 200s): a cancelled run finished; one still running, in the
		// last microsecond of the bucket.
		{id: "a2", user: "alice", created: at(100), status: event.StatusCancelled, latency: 4 * time.Second},
		{id: "a3", user: "alice", created: at(200).Add(-us), status: event.StatusRunning},
		// [200s, 300s): nothing.
		// [300s, 400s): a team run, whose members' runs do not count, and an
		// anonymous user's run.
		{id: "t1", user: "bob", team: true, created: at(320), status: event.StatusCompleted, latency: 6 * time.Second},
		{id: "m1", user: "bob", parent: "t1", created: at(321), status: event.StatusError, latency: time.Second},
		{id: "m2", user: "bob", parent: "t1", created: at(322), status: event.StatusRunning},
		{id: "b2", user: "bob", created: at(350), status: event.StatusCompleted, latency: 10 * time.Millisecond},
		{id: "n1", user: "", created: at(360), status: event.StatusCompleted, latency: time.Second},
		// [400s, 500s): only a member's run.
		{id: "m3", user: "bob", parent: "t1", created: at(450), status: event.StatusCompleted, latency: time.Second},
		// [500s, 600s).
		{id: "a4", user: "alice", created: at(600).Add(-us), status: event.StatusError, latency: 3 * time.Second},
		// At and after the window's end.
		{id: "late", user: "alice", created: at(600), status: event.StatusCompleted, latency: time.Second},
		{id: "later", user: "bob", created: at(700), status: event.StatusError, latency: time.Second},
		// Three buckets of 10µs / 3 each, at 1000s: they start at +0, +4
		// and +7 µs (rounded up), the same on every dialect.
		{id: "c0", user: "carol", created: at(1000).Add(3 * us), status: event.StatusCompleted, latency: us},
		{id: "c1", user: "carol", created: at(1000).Add(4 * us), status: event.StatusCompleted, latency: 2 * us},
		{id: "c2", user: "carol", created: at(1000).Add(6 * us), status: event.StatusCompleted, latency: 3 * us},
		{id: "c3", user: "carol", created: at(1000).Add(7 * us), status: event.StatusError, latency: 5 * us},
		{id: "c4", user: "carol", created: at(1000).Add(10 * us), status: event.StatusCompleted, latency: us},
	})
	empty := func(start time.Time) store.ActivityBucket { return store.ActivityBucket{Start: start} }
	tests := []struct {
		name     string
		from, to time.Time
		buckets  int
		user     string
		want     []store.ActivityBucket
	}{
		{"everyone", at(0), at(600), 6, "", []store.ActivityBucket{
			{Start: at(0), Runs: 2, Errors: 1, Finished: 2, AvgLatency: 1750*time.Millisecond + 125*us, MaxLatency: 2500 * time.Millisecond},
			{Start: at(100), Runs: 2, Finished: 1, AvgLatency: 4 * time.Second, MaxLatency: 4 * time.Second},
			empty(at(200)),
			{Start: at(300), Runs: 3, Finished: 3, AvgLatency: 7010 * time.Millisecond / 3, MaxLatency: 6 * time.Second},
			empty(at(400)),
			{Start: at(500), Runs: 1, Errors: 1, Finished: 1, AvgLatency: 3 * time.Second, MaxLatency: 3 * time.Second},
		}},
		{"one user", at(0), at(600), 6, "alice", []store.ActivityBucket{
			{Start: at(0), Runs: 1, Finished: 1, AvgLatency: 2500 * time.Millisecond, MaxLatency: 2500 * time.Millisecond},
			{Start: at(100), Runs: 2, Finished: 1, AvgLatency: 4 * time.Second, MaxLatency: 4 * time.Second},
			empty(at(200)), empty(at(300)), empty(at(400)),
			{Start: at(500), Runs: 1, Errors: 1, Finished: 1, AvgLatency: 3 * time.Second, MaxLatency: 3 * time.Second},
		}},
		{"unknown user", at(0), at(300), 3, "mallory", []store.ActivityBucket{empty(at(0)), empty(at(100)), empty(at(200))}},
		{"one bucket", at(0), at(600), 1, "", []store.ActivityBucket{
			{Start: at(0), Runs: 8, Errors: 2, Finished: 7, AvgLatency: 17510250 * us / 7, MaxLatency: 6 * time.Second},
		}},
		{"no buckets means one", at(100), at(200), 0, "alice", []store.ActivityBucket{
			{Start: at(100), Runs: 2, Finished: 1, AvgLatency: 4 * time.Second, MaxLatency: 4 * time.Second},
		}},
		{"from rounds up to the microsecond", at(0).Add(us / 2), at(100), 1, "", []store.ActivityBucket{
			{Start: at(0).Add(us), Runs: 1, Errors: 1, Finished: 1, AvgLatency: time.Second + 250*us, MaxLatency: time.Second + 250*us},
		}},
		{"uneven buckets", at(1000), at(1000).Add(10 * us), 3, "carol", []store.ActivityBucket{
			{Start: at(1000), Runs: 1, Finished: 1, AvgLatency: us, MaxLatency: us},
			{Start: at(1000).Add(4 * us), Runs: 2, Finished: 2, AvgLatency: 2500 * time.Nanosecond, MaxLatency: 3 * us},
			{Start: at(1000).Add(7 * us), Runs: 1, Errors: 1, Finished: 1, AvgLatency: 5 * us, MaxLatency: 5 * us},
		}},
		{"bounds in another zone", at(500).In(time.FixedZone("UTC-7", -7*3600)), at(600).In(time.FixedZone("UTC+9", 9*3600)), 2, "", []store.ActivityBucket{
			empty(at(500)),
			{Start: at(550), Runs: 1, Errors: 1, Finished: 1, AvgLatency: 3 * time.Second, MaxLatency: 3 * time.Second},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.RunActivity(ctx, tc.from, tc.to, tc.buckets, store.Filter{UserID: tc.user})
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}

	t.Run("at most 240 buckets", func(t *testing.T) {
		got, err := db.RunActivity(ctx, at(0), at(600), 1000, store.Filter{})
		require.NoError(t, err)
		require.Len(t, got, 240)
		runs := 0
		for i, b := range got {
			require.Equal(t, at(0).Add(time.Duration(i)*2500*time.Millisecond), b.Start)
			runs += b.Runs
		}
		require.Equal(t, 8, runs)
		require.Equal(t, 1, got[0].Runs)
		require.Equal(t, 1, got[4].Runs, "b1, at 10s")
	})

	invalid := []struct {
		name     string
		from, to time.Time
	}{
		{"empty window", at(0), at(0)},
		{"empty after rounding", at(0).Add(1), at(0).Add(999)},
		{"backwards", at(10), at(0)},
		{"longer than 1,000 years", at(0).AddDate(-1001, 0, 0), at(0)},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.RunActivity(ctx, tc.from, tc.to, 10, store.Filter{})
			require.ErrorIs(t, err, store.ErrInvalid)
		})
	}
}

func testRecentRuns(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	var runs []overviewRun
	for i := range 105 { // more than store.MaxLimit
		runs = append(runs, overviewRun{
			id: fmt.Sprintf("r%03d", i), user: []string{"alice", "bob", ""}[i%3],
			created: at(i), status: event.StatusCompleted, latency: time.Second,
		})
	}
	runs = append(runs,
		// A team run, and its member's run, newer but not listed.
		overviewRun{id: "t1", user: "bob", team: true, created: at(200), status: event.StatusRunning},
		overviewRun{id: "m1", user: "bob", parent: "t1", created: at(201), status: event.StatusCompleted, latency: time.Second},
		// The newest two, at the same instant: the id breaks the tie.
		overviewRun{id: "tie-a", user: "carol", created: at(300), status: event.StatusRunning},
		overviewRun{id: "tie-b", user: "carol", created: at(300), status: event.StatusError, latency: time.Second},
	)
	seedOverview(t, db, runs)

	newest := func(from, n, step int) []string {
		var out []string
		for i := from; len(out) < n; i -= step {
			out = append(out, fmt.Sprintf("r%03d", i))
		}
		return out
	}
	tests := []struct {
		name  string
		limit int
		user  string
		want  []string
	}{
		{"newest first", 4, "", []string{"tie-b", "tie-a", "t1", "r104"}},
		{"default limit", 0, "", append([]string{"tie-b", "tie-a", "t1"}, newest(104, 7, 1)...)},
		{"negative limit means default", -1, "", append([]string{"tie-b", "tie-a", "t1"}, newest(104, 7, 1)...)},
		{"limit capped", 1000, "", append([]string{"tie-b", "tie-a", "t1"}, newest(104, 97, 1)...)},
		{"one user", 3, "alice", newest(102, 3, 3)},
		{"member runs are not listed", 2, "bob", []string{"t1", "r103"}},
		{"unknown user", 10, "mallory", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.RecentRuns(ctx, tc.limit, store.Filter{UserID: tc.user})
			require.NoError(t, err)
			ids := make([]string, len(got))
			for i, r := range got {
				ids[i] = r.ID
				require.Empty(t, r.ParentRunID)
			}
			require.Equal(t, tc.want, ids)
		})
	}

	t.Run("runs without their large parts", func(t *testing.T) {
		r := &store.Run{ID: "full", Input: "hello", CreatedAt: at(400)}
		require.NoError(t, db.StartRun(ctx, agentSession("full", "dave", "helper"), r))
		r.Status, r.Content, r.UpdatedAt = event.StatusCompleted, "hi", at(401)
		r.Messages = []model.Message{{Role: model.RoleUser, Content: r.Input}, {Role: model.RoleAssistant, Content: r.Content}}
		r.Tools = []event.ToolCall{{ID: "c1", Name: "search", Args: map[string]any{"q": "x"}, Result: "y", StartedAt: at(400)}}
		r.References = []event.Reference{{KnowledgeID: "docs", DocumentID: "d1", ChunkID: "d1-00001", Score: 0.5}}
		r.Metrics = event.Metrics{InputTokens: 3, OutputTokens: 1, TotalTokens: 4, Duration: time.Second}
		require.NoError(t, db.FinishRun(ctx, r))

		got, err := db.RecentRuns(ctx, 1, store.Filter{UserID: "dave"})
		require.NoError(t, err)
		want := *r
		want.Messages, want.Tools, want.References = nil, nil, nil
		require.Equal(t, []store.Run{want}, got)
	})
}

// testRunLatency checks the latencies RunActivity reports, which the store
// records as runs end: UpdatedAt - CreatedAt to the microsecond, whatever
// CreatedAt the caller hands FinishRun, and zero rather than negative when a
// clock went backwards. Migration 0004 computes the same for the runs that
// finished before it.
func testRunLatency(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	us := time.Microsecond
	type latencyCase struct {
		name    string
		created time.Time
		latency time.Duration // UpdatedAt - CreatedAt
		now     bool          // UpdatedAt left zero: FinishRun's clock
		// pass is the CreatedAt FinishRun gets.
		pass func(created time.Time) time.Time
		want time.Duration // set for now cases once finished
	}
	same := func(c time.Time) time.Time { return c }
	passes := []struct {
		name string
		pass func(created time.Time) time.Time
	}{
		{"as started", same},
		{"without CreatedAt", func(time.Time) time.Time { return time.Time{} }},
		{"with another CreatedAt", func(c time.Time) time.Time { return c.Add(-time.Hour) }},
		{"with CreatedAt in another zone", func(c time.Time) time.Time { return c.In(time.FixedZone("UTC+9", 9*3600)) }},
	}
	latencies := []struct {
		name    string
		latency time.Duration
		want    time.Duration
	}{
		{"seconds and microseconds", 2*time.Second + 345678*us, 2*time.Second + 345678*us},
		{"across a second", 2 * us, 2 * us},
		{"over a day", 25*time.Hour + us, 25*time.Hour + us},
		{"none", 0, 0},
		{"clock went backwards", -time.Second - us, 0},
	}
	// Run i is created in [at(10i), at(10i+10)), at 999,999 µs past a second
	// so that some latencies carry into the next one.
	var cases []*latencyCase
	created := func() time.Time {
		return at(10*len(cases) + 5).Truncate(time.Second).Add(999_999 * us)
	}
	for _, p := range passes {
		for _, l := range latencies {
			cases = append(cases, &latencyCase{name: p.name + "/" + l.name, created: created(),
				latency: l.latency, pass: p.pass, want: l.want})
		}
		cases = append(cases, &latencyCase{name: p.name + "/now", created: created(), now: true, pass: p.pass})
	}
	for i, c := range cases {
		s, r := startRun(t, db, agentSession(fmt.Sprint("lat-", i), "u", "helper"), fmt.Sprint("lat-", i), c.name, c.created)
		require.Equal(t, c.created, r.CreatedAt, c.name)
		fin := &store.Run{ID: r.ID, SessionID: s.ID, Status: event.StatusCompleted, CreatedAt: c.pass(c.created)}
		if !c.now {
			fin.UpdatedAt = c.created.Add(c.latency)
		}
		require.NoError(t, db.FinishRun(ctx, fin), c.name)
		if c.now {
			c.want = fin.UpdatedAt.Sub(c.created)
			require.Positive(t, c.want, c.name)
		}
		got, err := db.GetRun(ctx, r.ID, store.Filter{})
		require.NoError(t, err)
		require.Equal(t, c.created, got.CreatedAt, c.name)
		if c.want > 0 {
			require.Equal(t, c.want, got.UpdatedAt.Sub(got.CreatedAt), c.name)
		}
	}
	check := func(t *testing.T, db *store.DB) {
		t.Helper()
		got, err := db.RunActivity(ctx, at(0), at(10*len(cases)), len(cases), store.Filter{})
		require.NoError(t, err)
		require.Len(t, got, len(cases))
		for i, c := range cases {
			b := got[i]
			require.Equal(t, 1, b.Finished, c.name)
			require.Equal(t, c.want, b.MaxLatency, c.name)
			require.Equal(t, c.want, b.AvgLatency, c.name)
		}
	}
	check(t, db)

	// Back to the schema before migration 0004, with the runs above
	// finished, and open again: the migration backfills their latencies.
	for _, q := range []string{
		`DROP INDEX runs_finished_created_at`,
		`ALTER TABLE runs DROP COLUMN latency_us`,
		`DELETE FROM troupe_migrations WHERE version = 4`,
	} {
		_, err := db.Bun().ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	require.NoError(t, db.Close())
	db = open(t)
	var again int
	require.NoError(t, db.Bun().QueryRowContext(ctx, `SELECT COUNT(*) FROM troupe_migrations WHERE version = 4`).Scan(&again))
	require.Equal(t, 1, again, "migration 0004 applied again")
	check(t, db)
}
