// Package storetest is the conformance suite for store.DB: every dialect the
// store supports runs the same tests, so SQLite (used in development) and
// PostgreSQL (used at scale) cannot drift apart in behaviour.
package storetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/store"
)

// Opener returns a migrated store for t, empty on the first call within t and
// closed when t ends. A later call within the same t must open the same
// underlying database again: the crash-recovery and migration tests close the
// store and reopen it.
type Opener = func(t *testing.T) *store.DB

// Run runs the whole suite against the databases open returns. Subtests run
// in parallel, each on its own database.
func Run(t *testing.T, open func(t *testing.T) *store.DB) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"StartFinishRunCreatesSession", testStartFinishRun},
		{"SessionNames", testSessionNames},
		{"SecondRunSameSession", testSecondRun},
		{"SessionOfAnotherOwner", testOtherOwner},
		{"InvalidArguments", testInvalid},
		{"ListSessionsFilters", testListFilters},
		{"ListSessionsPaging", testListPaging},
		{"ListSessionsSort", testListSort},
		{"GetSessionUserIsolation", testGetSession},
		{"HasFinishedRun", testHasFinishedRun},
		{"RenameSession", testRename},
		{"DeleteSessions", testDelete},
		{"ListRuns", testListRuns},
		{"LatestRuns", testLatestRuns},
		{"GetRun", testGetRun},
		{"ComponentRuns", testComponentRuns},
		{"History", testHistory},
		{"Summary", testSummary},
		{"RecentRuns", testRecentRuns},
		{"RunActivity", testRunActivity},
		{"RunLatency", testRunLatency},
		{"TimestampsUTCMicroseconds", testTimestamps},
		{"UnstorableText", testText},
		{"CrashRecovery", testCrashRecovery},
		{"MigrationsApplyOnce", testMigrationsOnce},
		{"Concurrency", testConcurrency},
		{"RunEvents", testRunEvents},
		{"StreamRequests", testStreamRequests},
		{"WorkflowSteps", testWorkflowSteps},
		{"WorkflowRecovery", testWorkflowRecovery},
		{"Approvals", testApprovals},
		{"Memories", testMemories},
		{"ProposedApprovals", testProposedApprovals},
		{"RunFiles", testRunFiles},
		{"EditorAudit", testEditorAudit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// base is an arbitrary fixed instant with sub-microsecond digits, so tests
// notice when the store does not normalize times.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// at returns base plus sec seconds, at the store's microsecond precision.
func at(sec int) time.Time {
	return base.Add(time.Duration(sec) * time.Second).Truncate(time.Microsecond)
}

func agentSession(id, user, agent string) *store.Session {
	return &store.Session{ID: id, Type: store.SessionAgent, ComponentID: agent, UserID: user}
}

// startRun starts run runID in a copy of s and returns both as stored.
func startRun(t *testing.T, db *store.DB, s *store.Session, runID, input string, created time.Time) (*store.Session, *store.Run) {
	t.Helper()
	sc := *s
	r := &store.Run{ID: runID, Input: input, CreatedAt: created}
	require.NoError(t, db.StartRun(t.Context(), &sc, r))
	return &sc, r
}

// finishRun completes r with content and one message pair derived from it.
func finishRun(t *testing.T, db *store.DB, r *store.Run, status event.Status, updated time.Time) {
	t.Helper()
	r.Status, r.UpdatedAt = status, updated
	r.Content = "answer to " + r.Input
	r.Messages = []model.Message{
		{Role: model.RoleUser, Content: r.Input},
		{Role: model.RoleAssistant, Content: r.Content},
	}
	require.NoError(t, db.FinishRun(t.Context(), r))
}

// session runs one completed turn in a new session and returns the session.
func session(t *testing.T, db *store.DB, s *store.Session, created, updated time.Time) *store.Session {
	t.Helper()
	if s.Name == "" {
		s.Name = s.ID
	}
	s, r := startRun(t, db, s, s.ID+"-run", "hello from "+s.ID, created)
	finishRun(t, db, r, event.StatusCompleted, updated)
	return s
}

func ids(sessions []store.Session) []string {
	out := make([]string, len(sessions))
	for i, s := range sessions {
		out[i] = s.ID
	}
	return out
}

func testStartFinishRun(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()

	s := agentSession("s1", "alice", "writer")
	s.State = map[string]any{"topic": "poems", "count": 2.0}
	r := &store.Run{ID: "r1", Input: "  \n Write a poem about the sea  \nin four lines", SpecVersion: "v7", Model: "gpt-x", Provider: "openai"}
	require.NoError(t, db.StartRun(ctx, s, r))

	require.Equal(t, "Write a poem about the sea", s.Name)
	require.Equal(t, event.StatusRunning, r.Status)
	require.Equal(t, "s1", r.SessionID)
	require.Equal(t, "alice", r.UserID)
	require.Equal(t, "writer", r.ComponentID)
	require.Equal(t, store.SessionAgent, r.Type)
	require.False(t, r.CreatedAt.IsZero())
	require.Equal(t, time.UTC, r.CreatedAt.Location())
	require.Equal(t, r.CreatedAt, r.UpdatedAt)
	require.Equal(t, r.CreatedAt, s.CreatedAt)
	require.Equal(t, s.CreatedAt, s.UpdatedAt)

	got, err := db.GetSession(ctx, "s1", store.Filter{})
	require.NoError(t, err)
	want := *s
	want.RunCount = 1
	require.Equal(t, &want, got)

	running, err := db.GetRun(ctx, "r1", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, r, running)

	r.Status = event.StatusCompleted
	r.Content = "The sea, the sea..."
	r.Tools = []event.ToolCall{{ID: "c1", Name: "rhyme", Args: map[string]any{"word": "sea"}, Result: "free", StartedAt: at(1), Duration: 3 * time.Millisecond}}
	r.Messages = []model.Message{{Role: model.RoleUser, Content: r.Input}, {Role: model.RoleAssistant, Content: r.Content}}
	r.Metrics = event.Metrics{InputTokens: 10, OutputTokens: 20, TotalTokens: 30, Duration: time.Second, ModelRequests: 1, ToolCalls: 1}
	r.References = []event.Reference{{KnowledgeID: "docs", DocumentID: "d1", DocumentName: "poems.md", ChunkID: "d1-00002", Score: 0.75, Page: 3, Heading: "Sea"}}
	r.ReasoningSteps = []event.Thought{{Title: "Step 1", Action: "Find a rhyme for sea.", NextAction: "final_answer", Source: event.ReasoningPlan, Confidence: 0.5}}
	r.Model = "gpt-y"
	before := r.UpdatedAt
	require.NoError(t, db.FinishRun(ctx, r))
	require.False(t, r.UpdatedAt.Before(before))
	require.Equal(t, time.UTC, r.UpdatedAt.Location())

	done, err := db.GetRun(ctx, "r1", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, r, done)

	got, err = db.GetSession(ctx, "s1", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, r.UpdatedAt, got.UpdatedAt, "finishing a run bumps the session")
	require.Equal(t, s.CreatedAt, got.CreatedAt)
}

func testSessionNames(t *testing.T, open Opener) {
	db := open(t)
	long := strings.Repeat("a", 100)
	longAccents := strings.Repeat("é", 90)
	tests := []struct {
		name, given, input, want string
	}{
		{"first line", "", "Hello there\nsecond line", "Hello there"},
		{"leading blank lines and spaces", "", "\n\n   Hi  \r\nmore", "Hi"},
		{"exactly 80", "", strings.Repeat("b", 80), strings.Repeat("b", 80)},
		{"long ascii", "", long, strings.Repeat("a", 79) + "…"},
		{"long multibyte counts characters", "", longAccents, strings.Repeat("é", 79) + "…"},
		{"no trailing space before ellipsis", "", strings.Repeat("w", 78) + "  tail" + long, strings.Repeat("w", 78) + "…"},
		{"empty input", "", "", ""},
		{"given name wins", "My chat", "Hello", "My chat"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.given == "" {
				require.Equal(t, tc.want, store.SessionName(tc.input))
			}
			s := agentSession(fmt.Sprintf("name-%d", i), "u", "a")
			s.Name = tc.given
			s, _ = startRun(t, db, s, fmt.Sprintf("name-run-%d", i), tc.input, time.Time{})
			require.Equal(t, tc.want, s.Name)
			got, err := db.GetSession(t.Context(), s.ID, store.Filter{})
			require.NoError(t, err)
			require.Equal(t, tc.want, got.Name)
		})
	}
}

func testSecondRun(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	s1, r1 := startRun(t, db, agentSession("s", "alice", "writer"), "r1", "first question", at(0))
	finishRun(t, db, r1, event.StatusCompleted, at(1))

	// The caller knows only the id and owner; the store fills in the rest.
	s2, r2 := startRun(t, db, agentSession("s", "alice", "writer"), "r2", "second question", at(2))
	require.Equal(t, "first question", s2.Name, "the name comes from the first run")
	require.Equal(t, s1.CreatedAt, s2.CreatedAt)
	require.Equal(t, at(1), s2.UpdatedAt)
	require.Equal(t, "s", r2.SessionID)
	finishRun(t, db, r2, event.StatusCompleted, at(3))

	got, err := db.GetSession(ctx, "s", store.Filter{UserID: "alice"})
	require.NoError(t, err)
	require.Equal(t, 2, got.RunCount)
	require.Equal(t, "first question", got.Name)
	require.Equal(t, at(0), got.CreatedAt)
	require.Equal(t, at(3), got.UpdatedAt)

	// A run finishing late (older timestamp) does not move updated_at back.
	_, r3 := startRun(t, db, agentSession("s", "alice", "writer"), "r3", "third", at(4))
	finishRun(t, db, r3, event.StatusCompleted, at(2))
	got, err = db.GetSession(ctx, "s", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, at(3), got.UpdatedAt)
	require.Equal(t, 3, got.RunCount)
}

func testOtherOwner(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	orig := session(t, db, agentSession("s", "alice", "writer"), at(0), at(1))

	tests := []struct {
		name string
		s    *store.Session
	}{
		{"another user", agentSession("s", "bob", "writer")},
		{"anonymous user", agentSession("s", "", "writer")},
		{"another agent", agentSession("s", "alice", "editor")},
		{"a team of the same name", &store.Session{ID: "s", Type: store.SessionTeam, ComponentID: "writer", UserID: "alice"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runID := fmt.Sprintf("intruder-%d", i)
			s := *tc.s
			err := db.StartRun(ctx, &s, &store.Run{ID: runID, Input: "let me in", CreatedAt: at(10)})
			require.ErrorIs(t, err, store.ErrNotFound)
			require.Equal(t, *tc.s, s, "the session argument is left alone on error")

			_, err = db.GetRun(ctx, runID, store.Filter{})
			require.ErrorIs(t, err, store.ErrNotFound, "no run was written")
			got, err := db.GetSession(ctx, "s", store.Filter{})
			require.NoError(t, err)
			require.Equal(t, "alice", got.UserID)
			require.Equal(t, "writer", got.ComponentID)
			require.Equal(t, 1, got.RunCount)
			require.Equal(t, orig.Name, got.Name)
			require.Equal(t, at(1), got.UpdatedAt)
		})
	}
}

func testInvalid(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	starts := []struct {
		name string
		s    store.Session
		r    store.Run
	}{
		{"no session id", store.Session{Type: store.SessionAgent, ComponentID: "a"}, store.Run{ID: "r"}},
		{"bad session type", store.Session{ID: "s", Type: "robot", ComponentID: "a"}, store.Run{ID: "r"}},
		{"no component", store.Session{ID: "s", Type: store.SessionAgent}, store.Run{ID: "r"}},
		{"no run id", *agentSession("s", "u", "a"), store.Run{}},
		{"run in another session", *agentSession("s", "u", "a"), store.Run{ID: "r", SessionID: "other"}},
		{"run of another user", *agentSession("s", "u", "a"), store.Run{ID: "r", UserID: "v"}},
		{"bad run type", *agentSession("s", "u", "a"), store.Run{ID: "r", Type: "robot"}},
	}
	for _, tc := range starts {
		t.Run("start "+tc.name, func(t *testing.T) {
			require.ErrorIs(t, db.StartRun(ctx, &tc.s, &tc.r), store.ErrInvalid)
		})
	}
	_, total, err := db.ListSessions(ctx, store.SessionQuery{})
	require.NoError(t, err)
	require.Zero(t, total, "invalid starts write nothing")

	_, r := startRun(t, db, agentSession("s", "u", "a"), "r", "hi", time.Time{})
	finishes := []struct {
		name string
		r    store.Run
		want error
	}{
		{"no id", store.Run{Status: event.StatusCompleted}, store.ErrInvalid},
		{"still running", store.Run{ID: r.ID, Status: event.StatusRunning}, store.ErrInvalid},
		{"no status", store.Run{ID: r.ID}, store.ErrInvalid},
		{"unknown status", store.Run{ID: r.ID, Status: "DONE"}, store.ErrInvalid},
		{"unknown run", store.Run{ID: "nope", Status: event.StatusCompleted}, store.ErrNotFound},
	}
	for _, tc := range finishes {
		t.Run("finish "+tc.name, func(t *testing.T) {
			require.ErrorIs(t, db.FinishRun(ctx, &tc.r), tc.want)
		})
	}

	_, _, err = db.ListSessions(ctx, store.SessionQuery{SortBy: "run_count"})
	require.ErrorIs(t, err, store.ErrInvalid)
	_, _, err = db.ListSessions(ctx, store.SessionQuery{SortOrder: "sideways"})
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = db.RenameSession(ctx, "s", "   ", store.Filter{})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func testListFilters(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	seed := []*store.Session{
		{ID: "a1", Type: store.SessionAgent, ComponentID: "writer", UserID: "alice", Name: "Poem about the SEA"},
		{ID: "a2", Type: store.SessionAgent, ComponentID: "coder", UserID: "alice", Name: "Fix the build"},
		{ID: "b1", Type: store.SessionAgent, ComponentID: "writer", UserID: "bob", Name: "Sea shanty"},
		{ID: "b2", Type: store.SessionTeam, ComponentID: "crew", UserID: "bob", Name: "Plan a 100% sea voyage"},
		{ID: "c1", Type: store.SessionTeam, ComponentID: "writer", UserID: "carol", Name: "Essay_draft"},
		{ID: "n1", Type: store.SessionAgent, ComponentID: "writer", UserID: "", Name: "anonymous question"},
		{ID: "a3", Type: store.SessionAgent, ComponentID: "coder", UserID: "alice", Name: `Wow! C:\temp`},
		// Would match "y_d" and "100%" if the wildcards were not escaped.
		{ID: "c2", Type: store.SessionTeam, ComponentID: "writer", UserID: "carol", Name: "Essay-draft 1000"},
	}
	for i, s := range seed {
		session(t, db, s, at(i), at(i))
	}
	// Default order: updated_at descending.
	tests := []struct {
		name string
		q    store.SessionQuery
		want []string
	}{
		{"everything (admin)", store.SessionQuery{}, []string{"c2", "a3", "n1", "c1", "b2", "b1", "a2", "a1"}},
		{"user", store.SessionQuery{Filter: store.Filter{UserID: "alice"}}, []string{"a3", "a2", "a1"}},
		{"unknown user", store.SessionQuery{Filter: store.Filter{UserID: "mallory"}}, []string{}},
		{"type agent", store.SessionQuery{Type: store.SessionAgent}, []string{"a3", "n1", "b1", "a2", "a1"}},
		{"type team", store.SessionQuery{Type: store.SessionTeam}, []string{"c2", "c1", "b2"}},
		{"component", store.SessionQuery{ComponentID: "writer"}, []string{"c2", "n1", "c1", "b1", "a1"}},
		{"component and type", store.SessionQuery{ComponentID: "writer", Type: store.SessionAgent}, []string{"n1", "b1", "a1"}},
		{"search is case-insensitive", store.SessionQuery{Search: "sea"}, []string{"b2", "b1", "a1"}},
		{"search upper case", store.SessionQuery{Search: "SEA"}, []string{"b2", "b1", "a1"}},
		{"search substring", store.SessionQuery{Search: "he bui"}, []string{"a2"}},
		{"search percent is literal", store.SessionQuery{Search: "100%"}, []string{"b2"}},
		{"search underscore is literal", store.SessionQuery{Search: "y_d"}, []string{"c1"}},
		{"search escape character is literal", store.SessionQuery{Search: "!"}, []string{"a3"}},
		{"search backslash is literal", store.SessionQuery{Search: `\`}, []string{"a3"}},
		{"search percent alone matches a literal percent", store.SessionQuery{Search: "%"}, []string{"b2"}},
		{"search user's sessions only", store.SessionQuery{Filter: store.Filter{UserID: "carol"}, Search: "ESSAY"}, []string{"c2", "c1"}},
		{"search no match", store.SessionQuery{Search: "zebra"}, []string{}},
		{"user and search", store.SessionQuery{Filter: store.Filter{UserID: "bob"}, Search: "sea"}, []string{"b2", "b1"}},
		{"user, type and component", store.SessionQuery{Filter: store.Filter{UserID: "bob"}, Type: store.SessionTeam, ComponentID: "crew"}, []string{"b2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, total, err := db.ListSessions(ctx, tc.q)
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(got))
			require.Equal(t, len(tc.want), total)
			for _, s := range got {
				require.Equal(t, 1, s.RunCount)
				require.Equal(t, time.UTC, s.UpdatedAt.Location())
			}
		})
	}
}

func testListPaging(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	const n = 105 // more than store.MaxLimit
	for i := range n {
		session(t, db, agentSession(fmt.Sprintf("s%03d", i), "u", "a"), at(i), at(i))
	}
	tests := []struct {
		name      string
		limit     int
		page      int
		wantLimit int // the page size in effect
		wantLen   int
		wantFirst string
	}{
		{"first page", 10, 1, 10, 10, "s104"},
		{"second page", 10, 2, 10, 10, "s094"},
		{"last partial page", 10, 11, 10, 5, "s004"},
		{"past the end", 10, 12, 10, 0, ""},
		{"far past the end", 10, 1000, 10, 0, ""},
		{"page zero means first", 10, 0, 10, 10, "s104"},
		{"negative page means first", 10, -3, 10, 10, "s104"},
		{"default limit", 0, 1, store.DefaultLimit, store.DefaultLimit, "s104"},
		{"negative limit means default", -5, 1, store.DefaultLimit, store.DefaultLimit, "s104"},
		{"limit capped", 1000, 1, store.MaxLimit, store.MaxLimit, "s104"},
		{"capped limit pages on", 1000, 2, store.MaxLimit, n - store.MaxLimit, "s004"},
		{"limit one", 1, 105, 1, 1, "s000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := store.SessionQuery{Limit: tc.limit, Page: tc.page}
			got, total, err := db.ListSessions(ctx, q)
			require.NoError(t, err)
			require.Equal(t, n, total)
			require.Len(t, got, tc.wantLen)
			if tc.wantLen > 0 {
				require.Equal(t, tc.wantFirst, got[0].ID)
			}
			// The paging meta a caller reports: the effective limit and the
			// number of pages.
			nq, err := q.Normalize()
			require.NoError(t, err)
			require.Equal(t, tc.wantLimit, nq.Limit)
			require.Equal(t, max(tc.page, 1), nq.Page)
			pages := (total + nq.Limit - 1) / nq.Limit
			require.Equal(t, map[int]int{10: 11, 20: 6, 100: 2, 1: 105}[tc.wantLimit], pages)
		})
	}

	// Walking every page visits each session exactly once, in order.
	var all []string
	for page := 1; ; page++ {
		got, total, err := db.ListSessions(ctx, store.SessionQuery{Limit: 7, Page: page, SortBy: "created_at", SortOrder: "asc"})
		require.NoError(t, err)
		require.Equal(t, n, total)
		if len(got) == 0 {
			require.Equal(t, (n+6)/7+1, page)
			break
		}
		all = append(all, ids(got)...)
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("s%03d", i)
	}
	require.Equal(t, want, all)

	// Filters apply to the total as well.
	_, total, err := db.ListSessions(ctx, store.SessionQuery{Search: "s10", Page: 5})
	require.NoError(t, err)
	require.Equal(t, 5, total, "s100..s104")
}

func testListSort(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	// Three orders that differ: created x < y < z, updated z < x < y,
	// names y < z < x. Names are lower case so byte order and collations agree.
	session(t, db, &store.Session{ID: "x", Type: store.SessionAgent, ComponentID: "a", Name: "charlie"}, at(0), at(20))
	session(t, db, &store.Session{ID: "y", Type: store.SessionAgent, ComponentID: "a", Name: "alpha"}, at(1), at(30))
	session(t, db, &store.Session{ID: "z", Type: store.SessionAgent, ComponentID: "a", Name: "bravo"}, at(2), at(10))
	// Ties with x on every field except created_at; broken by id.
	session(t, db, &store.Session{ID: "w", Type: store.SessionAgent, ComponentID: "a", Name: "charlie"}, at(-1), at(20))

	tests := []struct {
		by, order string
		want      []string
	}{
		{"created_at", "asc", []string{"w", "x", "y", "z"}},
		{"created_at", "desc", []string{"z", "y", "x", "w"}},
		{"updated_at", "asc", []string{"z", "w", "x", "y"}},
		{"updated_at", "desc", []string{"y", "x", "w", "z"}},
		{"name", "asc", []string{"y", "z", "w", "x"}},
		{"name", "desc", []string{"x", "w", "z", "y"}},
		{"", "", []string{"y", "x", "w", "z"}},
		{"", "asc", []string{"z", "w", "x", "y"}},
		{"name", "", []string{"x", "w", "z", "y"}},
		{"NAME", "ASC", []string{"y", "z", "w", "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.by+" "+tc.order, func(t *testing.T) {
			got, total, err := db.ListSessions(ctx, store.SessionQuery{SortBy: tc.by, SortOrder: tc.order})
			require.NoError(t, err)
			require.Equal(t, 4, total)
			require.Equal(t, tc.want, ids(got))
			// Paging one row at a time gives the same order: ties are stable.
			var paged []string
			for page := 1; page <= 4; page++ {
				got, _, err := db.ListSessions(ctx, store.SessionQuery{SortBy: tc.by, SortOrder: tc.order, Limit: 1, Page: page})
				require.NoError(t, err)
				paged = append(paged, ids(got)...)
			}
			require.Equal(t, tc.want, paged)
		})
	}
}

func testGetSession(t *testing.T, open Opener) {
	db := open(t)
	session(t, db, agentSession("alice-s", "alice", "a"), at(0), at(1))
	session(t, db, agentSession("anon-s", "", "a"), at(0), at(1))
	tests := []struct {
		id, user string
		visible  bool
	}{
		{"alice-s", "", true},
		{"alice-s", "alice", true},
		{"alice-s", "bob", false},
		{"alice-s", "ALICE", false},
		{"anon-s", "", true},
		{"anon-s", "bob", false},
		{"missing", "", false},
		{"missing", "alice", false},
	}
	for _, tc := range tests {
		t.Run(tc.id+" as "+tc.user, func(t *testing.T) {
			got, err := db.GetSession(t.Context(), tc.id, store.Filter{UserID: tc.user})
			if !tc.visible {
				require.ErrorIs(t, err, store.ErrNotFound)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.id, got.ID)
			require.Equal(t, 1, got.RunCount)
		})
	}
}

// testHasFinishedRun: a session counts as stored, as AgentOS stores it, from
// its first finished top-level run on; a member run finishing inside a team
// run still going does not count.
func testHasFinishedRun(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	s := &store.Session{ID: "team-s", Type: store.SessionTeam, ComponentID: "crew", UserID: "alice"}
	_, first := startRun(t, db, s, "r1", "first", at(0))
	member := &store.Run{ID: "r1-m", ParentRunID: "r1", ComponentID: "member", Type: store.SessionAgent, Input: "task", CreatedAt: at(1)}
	require.NoError(t, db.StartRun(ctx, s, member))
	finishRun(t, db, member, event.StatusCompleted, at(2))
	_, cancelled := startRun(t, db, agentSession("cancelled-s", "", "a"), "c1", "hi", at(0))
	finishRun(t, db, cancelled, event.StatusCancelled, at(1))

	check := func(id, user string, want bool) {
		t.Helper()
		got, err := db.HasFinishedRun(ctx, id, store.Filter{UserID: user})
		require.NoError(t, err)
		require.Equal(t, want, got, "session %s as %q", id, user)
	}
	check("team-s", "", false)
	check("cancelled-s", "", true)
	check("missing", "", false)

	finishRun(t, db, first, event.StatusCompleted, at(3))
	_, second := startRun(t, db, s, "r2", "second", at(4))
	tests := []struct {
		id, user string
		want     bool
	}{
		{"team-s", "", true},
		{"team-s", "alice", true},
		{"team-s", "bob", false},
		{"missing", "alice", false},
	}
	for _, tc := range tests {
		check(tc.id, tc.user, tc.want)
	}
	finishRun(t, db, second, event.StatusError, at(5))
	check("team-s", "alice", true)
}

func testRename(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	orig := session(t, db, agentSession("s", "alice", "a"), at(0), at(1))

	tests := []struct {
		name, id, user string
		visible        bool
	}{
		{"owner", "s", "alice", true},
		{"admin", "s", "", true},
		{"other user", "s", "bob", false},
		{"unknown session", "nope", "", false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := db.GetSession(ctx, "s", store.Filter{})
			require.NoError(t, err)
			name := fmt.Sprintf("  renamed %d  ", i)
			got, err := db.RenameSession(ctx, tc.id, name, store.Filter{UserID: tc.user})
			after, err2 := db.GetSession(ctx, "s", store.Filter{})
			require.NoError(t, err2)
			if !tc.visible {
				require.ErrorIs(t, err, store.ErrNotFound)
				require.Nil(t, got)
				require.Equal(t, before, after, "nothing changed")
				return
			}
			require.NoError(t, err)
			require.Equal(t, strings.TrimSpace(name), got.Name)
			require.Equal(t, after, got)
			require.Equal(t, 1, got.RunCount)
			require.Equal(t, orig.CreatedAt, got.CreatedAt)
			require.True(t, got.UpdatedAt.After(before.UpdatedAt), "renaming is an update")
		})
	}
}

func testDelete(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	for _, s := range []*store.Session{
		agentSession("a1", "alice", "x"), agentSession("a2", "alice", "x"), agentSession("a3", "alice", "x"),
		agentSession("a4", "alice", "x"), agentSession("b1", "bob", "x"), agentSession("b2", "bob", "x"),
	} {
		session(t, db, s, at(0), at(1))
		// A second run, so the cascade has more than one run to remove.
		_, r := startRun(t, db, s, s.ID+"-run2", "again", at(2))
		finishRun(t, db, r, event.StatusCompleted, at(3))
	}
	runCount := func(t *testing.T, sessionIDs ...string) int {
		n, err := db.Bun().NewSelect().TableExpr("runs").Where("session_id IN (?)", bun.In(sessionIDs)).Count(ctx)
		require.NoError(t, err)
		return int(n)
	}
	require.Equal(t, 12, runCount(t, "a1", "a2", "a3", "a4", "b1", "b2"))

	tests := []struct {
		name       string
		ids        []string
		user       string
		want       int
		gone, kept []string
	}{
		{"nothing", nil, "", 0, nil, []string{"a1"}},
		{"unknown", []string{"zzz"}, "", 0, nil, nil},
		{"invisible to another user", []string{"a1", "a2"}, "bob", 0, nil, []string{"a1", "a2"}},
		{"single by owner", []string{"a1"}, "alice", 1, []string{"a1"}, []string{"a2"}},
		{"already deleted", []string{"a1"}, "alice", 0, []string{"a1"}, nil},
		{"multiple with duplicates and unknown", []string{"a2", "a3", "a2", "zzz"}, "alice", 2, []string{"a2", "a3"}, []string{"a4"}},
		{"mixed owners: only the visible go", []string{"a4", "b1"}, "bob", 1, []string{"b1"}, []string{"a4"}},
		{"admin deletes any", []string{"a4", "b2"}, "", 2, []string{"a4", "b2"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			deleted, err := db.DeleteSessions(ctx, tc.ids, store.Filter{UserID: tc.user})
			require.NoError(t, err)
			require.Equal(t, tc.want, len(deleted))
			if tc.want > 0 {
				require.Equal(t, tc.gone, deleted, "the ids deleted, sorted, each once")
			}
			for _, id := range tc.gone {
				_, err := db.GetSession(ctx, id, store.Filter{})
				require.ErrorIs(t, err, store.ErrNotFound)
				_, err = db.GetRun(ctx, id+"-run", store.Filter{})
				require.ErrorIs(t, err, store.ErrNotFound)
				require.Zero(t, runCount(t, id), "runs are deleted with their session")
			}
			for _, id := range tc.kept {
				got, err := db.GetSession(ctx, id, store.Filter{})
				require.NoError(t, err)
				require.Equal(t, 2, got.RunCount)
			}
		})
	}
	_, total, err := db.ListSessions(ctx, store.SessionQuery{})
	require.NoError(t, err)
	require.Zero(t, total)
	require.Zero(t, runCount(t, "a1", "a2", "a3", "a4", "b1", "b2"))

	// Many ids at once (more than one statement's worth).
	var many []string
	for i := range 1200 {
		many = append(many, fmt.Sprintf("m%04d", i))
	}
	for _, id := range many[:3] {
		session(t, db, agentSession(id, "u", "x"), at(0), at(1))
	}
	deleted, err := db.DeleteSessions(ctx, many, store.Filter{UserID: "u"})
	require.NoError(t, err)
	require.Equal(t, many[:3], deleted)
}

// testLatestRuns checks the runs a page of a long session reads: the latest
// n top-level runs with their members (members of members included), in
// ListRuns order, and how many older top-level runs were left out.
func testLatestRuns(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	s := &store.Session{ID: "long", Type: store.SessionTeam, ComponentID: "crew", UserID: "alice"}
	for _, c := range []struct {
		id     string
		sec    int
		parent string
	}{
		{"t1", 10, ""},
		{"t2", 20, ""},
		{"t2-m", 21, "t2"},
		{"t3", 30, ""},
		{"t2-late", 31, "t2"}, // t2 still going when t3 started
		{"t4b", 40, ""},
		{"t4a", 40, ""}, // same instant as t4b: id orders them
		{"t4a-m", 41, "t4a"},
		{"t4a-m-m", 42, "t4a-m"}, // a member of a member
		{"t5", 50, ""},
	} {
		sc := *s
		r := &store.Run{ID: c.id, ParentRunID: c.parent, Input: "input " + c.id, CreatedAt: at(c.sec)}
		require.NoError(t, db.StartRun(ctx, &sc, r))
	}
	ids := func(runs []store.Run) []string {
		out := make([]string, len(runs))
		for i, r := range runs {
			out[i] = r.ID
		}
		return out
	}
	for _, tc := range []struct {
		n       int
		want    []string
		omitted int
	}{
		{1, []string{"t5"}, 5},
		{2, []string{"t4b", "t5"}, 4},
		{3, []string{"t4a", "t4b", "t4a-m", "t4a-m-m", "t5"}, 3},
		{4, []string{"t3", "t4a", "t4b", "t4a-m", "t4a-m-m", "t5"}, 2},
		{5, []string{"t2", "t2-m", "t3", "t2-late", "t4a", "t4b", "t4a-m", "t4a-m-m", "t5"}, 1},
		{50, []string{"t1", "t2", "t2-m", "t3", "t2-late", "t4a", "t4b", "t4a-m", "t4a-m-m", "t5"}, 0},
	} {
		runs, omitted, err := db.LatestRuns(ctx, "long", store.Filter{UserID: "alice"}, tc.n)
		require.NoError(t, err, "n=%d", tc.n)
		require.Equal(t, tc.want, ids(runs), "n=%d", tc.n)
		require.Equal(t, tc.omitted, omitted, "n=%d", tc.n)
	}
	all, err := db.ListRuns(ctx, "long", store.Filter{})
	require.NoError(t, err)
	latest, _, err := db.LatestRuns(ctx, "long", store.Filter{}, 50)
	require.NoError(t, err)
	require.Equal(t, all, latest, "the same runs as ListRuns")

	_, _, err = db.LatestRuns(ctx, "long", store.Filter{UserID: "bob"}, 5)
	require.ErrorIs(t, err, store.ErrNotFound, "another user's session")
	_, _, err = db.LatestRuns(ctx, "nope", store.Filter{}, 5)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = db.LatestRuns(ctx, "long", store.Filter{}, 0)
	require.ErrorIs(t, err, store.ErrInvalid)

	// RunsPage pages through the same turns, newest page first.
	for _, tc := range []struct {
		limit, offset int
		want          []string
	}{
		{2, 0, []string{"t4b", "t5"}},
		{2, 2, []string{"t3", "t4a", "t4a-m", "t4a-m-m"}},
		{2, 4, []string{"t1", "t2", "t2-m", "t2-late"}},
		{2, 6, []string{}},
		{50, 0, ids(all)},
	} {
		runs, total, err := db.RunsPage(ctx, "long", store.Filter{UserID: "alice"}, tc.limit, tc.offset)
		require.NoError(t, err, "limit=%d offset=%d", tc.limit, tc.offset)
		require.Equal(t, tc.want, ids(runs), "limit=%d offset=%d", tc.limit, tc.offset)
		require.Equal(t, 6, total)
	}
	page, _, err := db.RunsPage(ctx, "long", store.Filter{}, 50, 0)
	require.NoError(t, err)
	require.Equal(t, all, page, "the same runs as ListRuns")
	_, _, err = db.RunsPage(ctx, "long", store.Filter{UserID: "bob"}, 5, 0)
	require.ErrorIs(t, err, store.ErrNotFound, "another user's session")
	_, _, err = db.RunsPage(ctx, "nope", store.Filter{}, 5, 0)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = db.RunsPage(ctx, "long", store.Filter{}, 0, 0)
	require.ErrorIs(t, err, store.ErrInvalid)
}

func testListRuns(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	s := &store.Session{ID: "team-s", Type: store.SessionTeam, ComponentID: "crew", UserID: "alice"}

	// Created out of order: the list follows created_at, then id.
	var want []store.Run
	for _, c := range []struct {
		id     string
		sec    int
		parent string
		status event.Status
	}{
		{"r3", 30, "", event.StatusCompleted},
		{"r1", 10, "", event.StatusError},
		{"r2b", 20, "r1", event.StatusCompleted}, // a member run of r1
		{"r2a", 20, "r1", event.StatusCancelled}, // same instant: id breaks the tie
		{"r4", 40, "", event.StatusRunning},
	} {
		sc := *s
		r := &store.Run{
			ID: c.id, ParentRunID: c.parent, Input: "input " + c.id, CreatedAt: at(c.sec),
			Model: "m-" + c.id, Provider: "p", SpecVersion: "v1",
		}
		if c.parent != "" {
			r.ComponentID, r.Type = "member", store.SessionAgent
		}
		require.NoError(t, db.StartRun(ctx, &sc, r))
		if c.status != event.StatusRunning {
			r.Status = c.status
			r.Content = "content of " + c.id
			if c.status == event.StatusError {
				r.Error = "model exploded"
			}
			r.Tools = []event.ToolCall{
				{ID: "t1", Name: "search", Args: map[string]any{"q": "go", "n": 3.0, "deep": map[string]any{"x": true}}, Result: "found", StartedAt: at(c.sec + 1), Duration: 1500 * time.Microsecond, Member: "member"},
				{ID: "t2", Name: "fail", Args: map[string]any{}, Error: true, StartedAt: at(c.sec + 2)},
			}
			r.Messages = []model.Message{
				{Role: model.RoleUser, Content: r.Input},
				{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{{ID: "t1", Name: "search", Arguments: `{"q":"go"}`}}},
				{Role: model.RoleTool, ToolCallID: "t1", Name: "search", Content: "found"},
				{Role: model.RoleTool, ToolCallID: "t2", Name: "fail", Content: "boom", IsError: true},
				{Role: model.RoleAssistant, Content: r.Content},
			}
			r.Metrics = event.Metrics{InputTokens: 100, OutputTokens: 50, TotalTokens: 150, Duration: 2 * time.Second,
				TimeToFirstToken: 300 * time.Millisecond, ModelRequests: 2, ToolCalls: 2}
			r.UpdatedAt = at(c.sec + 5)
			require.NoError(t, db.FinishRun(ctx, r))
		}
		want = append(want, *r)
	}
	order := map[string]int{"r1": 0, "r2a": 1, "r2b": 2, "r3": 3, "r4": 4}
	sorted := make([]store.Run, len(want))
	for _, r := range want {
		sorted[order[r.ID]] = r
	}

	tests := []struct {
		name, session, user string
		visible             bool
	}{
		{"admin", "team-s", "", true},
		{"owner", "team-s", "alice", true},
		{"other user", "team-s", "bob", false},
		{"unknown session", "nope", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs, err := db.ListRuns(ctx, tc.session, store.Filter{UserID: tc.user})
			if !tc.visible {
				require.ErrorIs(t, err, store.ErrNotFound)
				return
			}
			require.NoError(t, err)
			require.Equal(t, sorted, runs)
			for _, r := range runs {
				require.Equal(t, time.UTC, r.CreatedAt.Location())
				require.Equal(t, time.UTC, r.UpdatedAt.Location())
			}
		})
	}
	got, err := db.GetSession(ctx, "team-s", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, 5, got.RunCount, "member runs count too")
}

func testGetRun(t *testing.T, open Opener) {
	db := open(t)
	_, r := startRun(t, db, agentSession("s", "alice", "a"), "r", "hi", at(0))
	tests := []struct {
		id, user string
		visible  bool
	}{
		{"r", "", true},
		{"r", "alice", true},
		{"r", "bob", false},
		{"missing", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.id+" as "+tc.user, func(t *testing.T) {
			got, err := db.GetRun(t.Context(), tc.id, store.Filter{UserID: tc.user})
			if !tc.visible {
				require.ErrorIs(t, err, store.ErrNotFound)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, r, got)
		})
	}
}

func testHistory(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	s := &store.Session{ID: "s", Type: store.SessionTeam, ComponentID: "crew", UserID: "u"}
	runs := []struct {
		id     string
		status event.Status
		parent string
	}{
		{"r1", event.StatusCompleted, ""},
		{"r2", event.StatusError, ""},
		{"r3", event.StatusCompleted, ""},
		{"m1", event.StatusCompleted, "r3"}, // a member's run: not the session's conversation
		{"r4", event.StatusCancelled, ""},
		{"r5", event.StatusCompleted, ""},
		{"r6", event.StatusRunning, ""},
	}
	for i, c := range runs {
		sc := *s
		r := &store.Run{ID: c.id, ParentRunID: c.parent, Input: "q" + c.id, CreatedAt: at(i)}
		if c.parent != "" {
			r.ComponentID, r.Type = "member", store.SessionAgent
		}
		require.NoError(t, db.StartRun(ctx, &sc, r))
		if c.status != event.StatusRunning {
			finishRun(t, db, r, c.status, at(i))
		}
	}
	turn := func(id string) []model.Message {
		return []model.Message{{Role: model.RoleUser, Content: "q" + id}, {Role: model.RoleAssistant, Content: "answer to q" + id}}
	}
	concat := func(ids ...string) [][]model.Message {
		var out [][]model.Message
		for _, id := range ids {
			out = append(out, turn(id))
		}
		return out
	}
	tests := []struct {
		name    string
		session string
		n       int
		want    [][]model.Message
	}{
		{"last one", "s", 1, concat("r5")},
		{"last two", "s", 2, concat("r3", "r5")},
		{"all completed", "s", 3, concat("r1", "r3", "r5")},
		{"more than there are", "s", 50, concat("r1", "r3", "r5")},
		{"zero", "s", 0, nil},
		{"negative", "s", -1, nil},
		{"unknown session", "nope", 5, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.History(ctx, tc.session, tc.n)
			require.NoError(t, err)
			if len(tc.want) == 0 {
				require.Empty(t, got)
				return
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func testTimestamps(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	created := time.Date(2024, 2, 29, 23, 59, 59, 999999999, zone)
	s, r := startRun(t, db, agentSession("s", "u", "a"), "r", "hi", created)
	wantCreated := time.Date(2024, 2, 29, 18, 29, 59, 999999000, time.UTC)
	require.Equal(t, wantCreated, r.CreatedAt, "UTC, truncated to microseconds")
	require.Equal(t, wantCreated, s.CreatedAt)

	finishRun(t, db, r, event.StatusCompleted, created.Add(1500*time.Nanosecond))
	require.Equal(t, wantCreated.Add(2*time.Microsecond), r.UpdatedAt)

	got, err := db.GetRun(ctx, "r", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, wantCreated, got.CreatedAt)
	require.Equal(t, wantCreated.Add(2*time.Microsecond), got.UpdatedAt)
	require.Equal(t, time.UTC, got.CreatedAt.Location())

	// Microseconds order correctly, also across the seconds boundary.
	for i, sec := range []time.Time{at(0).Add(-time.Microsecond), at(0), at(0).Add(time.Microsecond)} {
		session(t, db, agentSession(fmt.Sprintf("t%d", i), "v", "a"), sec, sec)
	}
	list, _, err := db.ListSessions(ctx, store.SessionQuery{Filter: store.Filter{UserID: "v"}, SortBy: "created_at", SortOrder: "asc"})
	require.NoError(t, err)
	require.Equal(t, []string{"t0", "t1", "t2"}, ids(list))
	require.Equal(t, at(0).Add(-time.Microsecond), list[0].CreatedAt)

	// Default times come from the clock, in UTC.
	before := time.Now().Add(-time.Second)
	s2, r2 := startRun(t, db, agentSession("now", "u", "a"), "now-r", "hi", time.Time{})
	require.True(t, r2.CreatedAt.After(before))
	require.Equal(t, time.UTC, r2.CreatedAt.Location())
	require.Equal(t, r2.CreatedAt, s2.CreatedAt)
}

func testText(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	// PostgreSQL cannot store NUL or invalid UTF-8 in text; both dialects
	// clean such text the same way instead of failing the run.
	s, r := startRun(t, db, agentSession("s", "u", "a"), "r", "bad\x00input\xff", at(0))
	require.Equal(t, "badinput\uFFFD", s.Name)
	r.Status, r.Content, r.Error = event.StatusError, "out\x00put", "err\xfe"
	r.Messages = []model.Message{{Role: model.RoleTool, Content: "binary \x00 tool output"}}
	r.Tools = []event.ToolCall{{ID: "t", Name: "cat", Result: "\x00\x01"}}
	require.NoError(t, db.FinishRun(ctx, r))
	got, err := db.GetRun(ctx, "r", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, "badinput\uFFFD", got.Input)
	require.Equal(t, "output", got.Content)
	require.Equal(t, "err\uFFFD", got.Error)
	// JSON escapes NUL, so messages and tools keep it.
	require.Equal(t, r.Messages, got.Messages)
	require.Equal(t, r.Tools, got.Tools)
	_, err = db.RenameSession(ctx, "s", "new\x00name", store.Filter{})
	require.NoError(t, err)
}

func testCrashRecovery(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	_, running := startRun(t, db, agentSession("s", "u", "a"), "running", "still going", at(0))
	_, done := startRun(t, db, agentSession("s", "u", "a"), "done", "finished", at(1))
	finishRun(t, db, done, event.StatusCompleted, at(2))
	_, cancelled := startRun(t, db, agentSession("s2", "u", "a"), "cancelled", "stop", at(3))
	cancelled.Partial = true // the answer streamed so far, kept
	finishRun(t, db, cancelled, event.StatusCancelled, at(4))
	require.Empty(t, db.Interrupted())
	require.NoError(t, db.Close(), "the process stops with a run in flight")

	before := time.Now().Add(-time.Second)
	db = open(t)
	got, err := db.GetRun(ctx, "running", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, event.StatusError, got.Status)
	require.Equal(t, store.InterruptedRunError, got.Error)
	require.True(t, got.UpdatedAt.After(before), "updated at recovery time")
	require.Equal(t, running.CreatedAt, got.CreatedAt)
	require.Equal(t, running.Input, got.Input)
	// Open reports what it recovered, so that the server can trace it.
	require.Equal(t, []store.Run{{ID: "running", SessionID: "s", ComponentID: "a", Type: store.SessionAgent, UserID: "u",
		Input: "still going", Status: event.StatusError, Error: store.InterruptedRunError,
		CreatedAt: running.CreatedAt, UpdatedAt: got.UpdatedAt}}, db.Interrupted())
	// It has a latency, up to the recovery, like any finished run.
	activity, err := db.RunActivity(ctx, at(0), at(1), 1, store.Filter{})
	require.NoError(t, err)
	latency := got.UpdatedAt.Sub(got.CreatedAt)
	require.Equal(t, []store.ActivityBucket{{Start: at(0), Runs: 1, Errors: 1, Finished: 1,
		AvgLatency: latency, MaxLatency: latency}}, activity)

	for _, want := range []*store.Run{done, cancelled} {
		got, err := db.GetRun(ctx, want.ID, store.Filter{})
		require.NoError(t, err)
		require.Equal(t, want, got, "finished runs are untouched")
	}
}

func testMigrationsOnce(t *testing.T, open Opener) {
	type applied struct {
		version int
		at      string
	}
	read := func(db *store.DB) []applied {
		rows, err := db.Bun().QueryContext(t.Context(), "SELECT version, applied_at FROM troupe_migrations ORDER BY version")
		require.NoError(t, err)
		defer rows.Close()
		var out []applied
		for rows.Next() {
			var a applied
			require.NoError(t, rows.Scan(&a.version, &a.at))
			out = append(out, a)
		}
		require.NoError(t, rows.Err())
		return out
	}
	db := open(t)
	session(t, db, agentSession("kept", "u", "a"), at(0), at(1))
	first := read(db)
	require.NotEmpty(t, first)
	require.Equal(t, 1, first[0].version)
	require.NoError(t, db.Close())

	for range 2 {
		db = open(t)
		require.Equal(t, first, read(db), "reopening applies nothing again")
		got, err := db.GetSession(t.Context(), "kept", store.Filter{})
		require.NoError(t, err, "data survives reopening")
		require.Equal(t, 1, got.RunCount)
		require.NoError(t, db.Ping(t.Context()))
		require.NoError(t, db.Close())
	}
}

func testConcurrency(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	const (
		workers   = 16
		perWorker = 20
		shared    = 4 // sessions every worker writes into
	)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				sid := fmt.Sprintf("own-%d-%d", w, i) // a new session per run...
				if i%2 == 1 {
					sid = fmt.Sprintf("shared-%d", i%shared) // ...or a busy shared one
				}
				s := agentSession(sid, "u", "a")
				r := &store.Run{ID: fmt.Sprintf("run-%d-%d", w, i), Input: "question"}
				if err := db.StartRun(ctx, s, r); err != nil {
					fail(err)
					continue
				}
				if _, err := db.History(ctx, sid, 3); err != nil {
					fail(err)
				}
				if _, _, err := db.ListSessions(ctx, store.SessionQuery{Limit: 5}); err != nil {
					fail(err)
				}
				r.Status, r.Content = event.StatusCompleted, "answer"
				r.Messages = []model.Message{{Role: model.RoleUser, Content: r.Input}, {Role: model.RoleAssistant, Content: r.Content}}
				if err := db.FinishRun(ctx, r); err != nil {
					fail(err)
				}
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)

	_, total, err := db.ListSessions(ctx, store.SessionQuery{})
	require.NoError(t, err)
	require.Equal(t, workers*perWorker/2+shared/2, total, "a session per even run, plus shared-1 and shared-3 for the odd ones")
	runs := 0
	for _, sid := range []string{"shared-1", "shared-3"} {
		list, err := db.ListRuns(ctx, sid, store.Filter{})
		require.NoError(t, err)
		for _, r := range list {
			require.Equal(t, event.StatusCompleted, r.Status)
		}
		runs += len(list)
	}
	require.Equal(t, workers*perWorker/2, runs)
	for w := range workers {
		for i := 0; i < perWorker; i += 2 {
			got, err := db.GetRun(ctx, fmt.Sprintf("run-%d-%d", w, i), store.Filter{UserID: "u"})
			require.NoError(t, err)
			require.Equal(t, event.StatusCompleted, got.Status)
		}
	}

	// First runs racing to create the same new session: one creates it, the
	// others join it; an intruder racing them never gets in.
	const racers = 8
	for k := range 20 {
		sid := fmt.Sprintf("race-%d", k)
		var (
			ready    sync.WaitGroup
			startErr [racers + 1]error
		)
		ready.Add(1)
		for g := range racers + 1 {
			wg.Go(func() {
				s := agentSession(sid, "u", "a")
				if g == racers {
					s.UserID = "intruder"
				}
				ready.Wait()
				startErr[g] = db.StartRun(ctx, s, &store.Run{ID: fmt.Sprintf("%s-%d", sid, g), Input: "hi"})
			})
		}
		ready.Done()
		wg.Wait()
		got, err := db.GetSession(ctx, sid, store.Filter{})
		require.NoError(t, err)
		if got.UserID == "intruder" {
			// The intruder won the race: everyone else is turned away.
			require.Equal(t, 1, got.RunCount)
			for g := range racers {
				require.ErrorIs(t, startErr[g], store.ErrNotFound)
			}
			continue
		}
		require.ErrorIs(t, startErr[racers], store.ErrNotFound)
		for g := range racers {
			require.NoError(t, startErr[g])
		}
		require.Equal(t, racers, got.RunCount)
	}
}
