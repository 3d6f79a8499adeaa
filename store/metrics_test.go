package store_test

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
)

// metricsOpeners runs the daily metrics tests on SQLite always and on
// PostgreSQL when it is configured. The PostgreSQL connections use a session
// time zone far from UTC, so that days must be cut in UTC explicitly.
func metricsOpeners(t *testing.T) map[string]func(t *testing.T) *store.DB {
	out := map[string]func(t *testing.T) *store.DB{
		"sqlite": func(t *testing.T) *store.DB { return openSQLite(t, filepath.Join(t.TempDir(), "m.db")) },
	}
	if dsn := os.Getenv(postgresEnv); dsn != "" {
		out["postgres"] = func(t *testing.T) *store.DB {
			u, err := url.Parse(newSchema(t, dsn))
			require.NoError(t, err)
			q := u.Query()
			q.Set("timezone", "Pacific/Kiritimati") // UTC+14
			u.RawQuery = q.Encode()
			return openPostgres(t, u.String(), store.Options{MaxOpenConns: 4})
		}
	}
	return out
}

type metricsSeedRun struct {
	id, parent, session, typ, component, user string
	at                                        time.Time
	model, provider                           string
	in, out                                   int
	finish                                    bool
}

func seedMetricsRuns(t *testing.T, db *store.DB, runs []metricsSeedRun) {
	t.Helper()
	ctx := t.Context()
	for _, sr := range runs {
		s := &store.Session{ID: sr.session, Type: sr.typ, ComponentID: sr.component, UserID: sr.user}
		r := &store.Run{ID: sr.id, ParentRunID: sr.parent, Input: "question " + sr.id, CreatedAt: sr.at, Model: sr.model, Provider: sr.provider}
		if sr.parent != "" {
			// Member runs belong to the team's session but name the member.
			r.ComponentID, r.Type = sr.component, store.SessionAgent
			s.ComponentID, s.Type = "research", store.SessionTeam
		}
		require.NoError(t, db.StartRun(ctx, s, r))
		if !sr.finish {
			continue
		}
		r.Status, r.Content, r.UpdatedAt = event.StatusCompleted, "answer", sr.at.Add(time.Second)
		r.Metrics = event.Metrics{InputTokens: sr.in, OutputTokens: sr.out, TotalTokens: sr.in + sr.out, Duration: time.Second}
		require.NoError(t, db.FinishRun(ctx, r))
	}
}

func marchDay(d int, hms ...int) time.Time {
	t := time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC)
	if len(hms) == 3 {
		t = t.Add(time.Duration(hms[0])*time.Hour + time.Duration(hms[1])*time.Minute + time.Duration(hms[2])*time.Second)
	}
	return t
}

func TestDailyMetrics(t *testing.T) {
	for name, open := range metricsOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := t.Context()
			A, T := store.SessionAgent, store.SessionTeam
			seedMetricsRuns(t, db, []metricsSeedRun{
				// The day before the range.
				{id: "r0", session: "s0", typ: A, component: "support", user: "alice", at: marchDay(1).Add(-time.Microsecond), model: "gpt-4o", provider: "openai", in: 1000, out: 1000, finish: true},
				// 1 March: two sessions of alice, one of bob, one anonymous.
				{id: "r1", session: "s1", typ: A, component: "support", user: "alice", at: marchDay(1, 0, 0, 0), model: "gpt-4o", provider: "openai", in: 100, out: 20, finish: true},
				{id: "r2", session: "s1", typ: A, component: "support", user: "alice", at: marchDay(1, 10, 5, 0), model: "gpt-4o", provider: "openai", in: 50, out: 10, finish: true},
				{id: "r3", session: "s2", typ: A, component: "support", user: "bob", at: marchDay(2).Add(-time.Microsecond), model: "claude", provider: "anthropic", in: 30, out: 5, finish: true},
				{id: "t1", session: "s3", typ: T, component: "research", user: "alice", at: marchDay(1, 12, 0, 0), model: "claude", provider: "anthropic", in: 500, out: 100, finish: true},
				{id: "m1", parent: "t1", session: "s3", typ: T, component: "writer", user: "alice", at: marchDay(1, 12, 0, 1), model: "gpt-4o-mini", provider: "openai", in: 80, out: 40, finish: true},
				{id: "r4", session: "s4", typ: A, component: "support", at: marchDay(1, 13, 0, 0)}, // still running: no model, no tokens
				// 2 March: alice's first session again, and carol; the same
				// model through two providers.
				{id: "r5", session: "s1", typ: A, component: "support", user: "alice", at: marchDay(2, 0, 0, 0), model: "gpt-4o", provider: "azure", in: 10, out: 1, finish: true},
				{id: "r6", session: "s5", typ: A, component: "support", user: "carol", at: marchDay(2, 18, 30, 0), model: "gpt-4o", provider: "openai", in: 5, out: 5, finish: true},
				{id: "m2", parent: "t1", session: "s3", typ: T, component: "writer", user: "alice", at: marchDay(2, 1, 0, 0), model: "gpt-4o-mini", provider: "openai", in: 80, out: 40, finish: true},
				// 4 March, after the range; nothing on 3 March.
				{id: "r7", session: "s6", typ: A, component: "support", user: "dave", at: marchDay(4), model: "gpt-4o", provider: "openai", in: 7, out: 7, finish: true},
			})

			// from and to anywhere in their days.
			got, err := db.DailyMetrics(ctx, marchDay(1, 9, 30, 0), marchDay(2, 0, 0, 1))
			require.NoError(t, err)
			want := []store.DailyMetrics{
				{
					Date: "2026-03-01", AgentRuns: 4, TeamRuns: 1, Sessions: 4, Users: 2,
					InputTokens: 680, OutputTokens: 135, TotalTokens: 815,
					Models: []store.ModelMetrics{
						{Model: "claude", Provider: "anthropic", Runs: 2, InputTokens: 530, OutputTokens: 105},
						{Model: "gpt-4o", Provider: "openai", Runs: 2, InputTokens: 150, OutputTokens: 30},
					},
				},
				{
					Date: "2026-03-02", AgentRuns: 2, Sessions: 2, Users: 2,
					InputTokens: 15, OutputTokens: 6, TotalTokens: 21,
					Models: []store.ModelMetrics{
						{Model: "gpt-4o", Provider: "azure", Runs: 1, InputTokens: 10, OutputTokens: 1},
						{Model: "gpt-4o", Provider: "openai", Runs: 1, InputTokens: 5, OutputTokens: 5},
					},
				},
			}
			require.Equal(t, want, got)

			// Days without runs are left out; both ends are included.
			got, err = db.DailyMetrics(ctx, marchDay(1).AddDate(0, 0, -1), marchDay(4, 23, 59, 59))
			require.NoError(t, err)
			var dates []string
			for _, d := range got {
				dates = append(dates, d.Date)
			}
			require.Equal(t, []string{"2026-02-28", "2026-03-01", "2026-03-02", "2026-03-04"}, dates)
			require.Equal(t, store.DailyMetrics{
				Date: "2026-03-04", AgentRuns: 1, Sessions: 1, Users: 1, InputTokens: 7, OutputTokens: 7, TotalTokens: 14,
				Models: []store.ModelMetrics{{Model: "gpt-4o", Provider: "openai", Runs: 1, InputTokens: 7, OutputTokens: 7}},
			}, got[3])

			// The last day a date can name still ends the range: the day
			// after 9999-12-31 is past what either database orders right.
			for _, end := range []time.Time{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)} {
				got, err = db.DailyMetrics(ctx, marchDay(4), end)
				require.NoError(t, err, end)
				require.Len(t, got, 1, end)
				require.Equal(t, "2026-03-04", got[0].Date)
			}

			// A single day.
			got, err = db.DailyMetrics(ctx, marchDay(2), marchDay(2))
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, want[1], got[0])

			// Days are UTC days whatever the location of the bounds: 2 March
			// 08:00 in Tokyo is 1 March 23:00 UTC.
			tokyo := time.FixedZone("JST", 9*3600)
			got, err = db.DailyMetrics(ctx, time.Date(2026, 3, 2, 8, 0, 0, 0, tokyo), time.Date(2026, 3, 2, 8, 0, 0, 0, tokyo))
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, "2026-03-01", got[0].Date)

			// Empty results are empty slices.
			got, err = db.DailyMetrics(ctx, marchDay(3), marchDay(3))
			require.NoError(t, err)
			require.NotNil(t, got)
			require.Empty(t, got)
			got, err = db.DailyMetrics(ctx, marchDay(2), marchDay(1))
			require.NoError(t, err)
			require.NotNil(t, got)
			require.Empty(t, got)
		})
	}
}

func TestDailyMetricsEmptyStore(t *testing.T) {
	for name, open := range metricsOpeners(t) {
		t.Run(name, func(t *testing.T) {
			got, err := open(t).DailyMetrics(t.Context(), time.Time{}, time.Now())
			require.NoError(t, err)
			require.Equal(t, []store.DailyMetrics{}, got)
		})
	}
}
