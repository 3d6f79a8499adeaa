package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/trigger"
	"github.com/troupehq/troupe/store"
)

const everySecond = `
kind: Trigger
name: tick
target: {agent: writer}
schedule: {every: 1s}
message: tick
`

// requireTicksOnce checks the firings of trigger name: one per tick (no
// tick twice), no tick skipped between the first and the last, at least
// min of them.
func requireTicksOnce(t *testing.T, db *store.DB, name string, min int) []store.TriggerFire {
	t.Helper()
	fires, err := db.TriggerFires(t.Context(), name, 100)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(fires), min, "firings of %s", name)
	seen := map[time.Time]bool{}
	for _, f := range fires {
		require.False(t, seen[f.ScheduledAt], "tick %s fired twice", f.ScheduledAt)
		seen[f.ScheduledAt] = true
		require.Equal(t, f.ScheduledAt, f.ScheduledAt.Truncate(time.Second), "ticks are whole seconds")
	}
	// Newest first: consecutive firings are consecutive ticks.
	for i := 1; i < len(fires); i++ {
		require.Equal(t, time.Second, fires[i-1].ScheduledAt.Sub(fires[i].ScheduledAt), "a tick was skipped")
	}
	return fires
}

// TestScheduleFiresOncePerTick: a one-second schedule fires once per tick
// over about three seconds, on one replica on SQLite and across two
// replicas (two job clients) on one PostgreSQL database; each firing is a
// background run of the target that names its trigger.
func TestScheduleFiresOncePerTick(t *testing.T) {
	t.Parallel()
	cases := map[string]func(t *testing.T) (string, int){
		"sqlite": func(t *testing.T) (string, int) { return filepath.Join(t.TempDir(), "troupe.db"), 1 },
	}
	if dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN"); dsn != "" {
		cases["postgres-2-replicas"] = func(t *testing.T) (string, int) { return pgSchema(t, dsn), 2 }
	} else {
		t.Log("TROUPE_TEST_POSTGRES_DSN not set: the PostgreSQL variant is skipped")
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dsn, replicas := setup(t)
			var servers []*testServer
			for range replicas {
				servers = append(servers, startServer(t, withDatabase(dsn), withSpecs(everySecond)))
			}
			// The first tick waits for a leader to be elected; then count
			// the firings over three seconds.
			require.Eventually(t, func() bool {
				fires, err := servers[0].db.TriggerFires(t.Context(), "tick", 1)
				return err == nil && len(fires) == 1
			}, 15*time.Second, 20*time.Millisecond)
			first, err := servers[0].db.TriggerFires(t.Context(), "tick", 100)
			require.NoError(t, err)
			time.Sleep(3 * time.Second)
			fires := requireTicksOnce(t, servers[0].db, "tick", len(first)+2)
			n := len(fires) - len(first)
			require.LessOrEqual(t, n, 4, "more firings than ticks in 3s")
			t.Logf("%d firings in 3s on %d replicas", n, replicas)

			var run struct {
				Trigger string `json:"trigger"`
			}
			require.Eventually(t, func() bool {
				servers[len(servers)-1].json(http.MethodGet, "/agents/writer/runs/"+fires[len(fires)-1].RunID, "", "", http.StatusOK, &run)
				return run.Trigger == "tick"
			}, 5*time.Second, 50*time.Millisecond)
		})
	}
}

// TestWebhook: a call with a missing or bad signature answers 401 and starts
// no run; a signed one answers 202 with the run, whose message is the raw
// body and which names its trigger.
func TestWebhook(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef0123"
	ts := startServer(t, withSpecs(`
kind: Trigger
name: github
target: {agent: writer}
webhook: {path: github/push, secret: `+secret+`}
`))
	body := `{"ref":"main"}`
	tests := []struct {
		name string
		sig  string
		want int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"wrong secret", trigger.Sign("another-secret-0123456", []byte(body)), http.StatusUnauthorized},
		{"other body", trigger.Sign(secret, []byte(`{"ref":"dev"}`)), http.StatusUnauthorized},
		{"no prefix", trigger.Sign(secret, []byte(body))[len("sha256="):], http.StatusUnauthorized},
		{"not hex", "sha256=zz", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/hooks/github/push", strings.NewReader(body))
		require.NoError(t, err)
		if tc.sig != "" {
			req.Header.Set("X-Hub-Signature-256", tc.sig)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, tc.want, resp.StatusCode, tc.name)
	}
	fires, err := ts.db.TriggerFires(t.Context(), "github", 10)
	require.NoError(t, err)
	require.Empty(t, fires, "a refused call started a run")
	var list []any
	ts.json(http.MethodGet, "/agents/writer/runs", "", "", http.StatusOK, &list)
	require.Empty(t, list, "a refused call started a run")
	require.Equal(t, uint64(len(tests)), ts.triggers.Refused())

	code, _, _ := ts.do(http.MethodPost, "/hooks/unknown", "", "application/json", body)
	require.Equal(t, http.StatusNotFound, code)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/hooks/github/push", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Hub-Signature-256", trigger.Sign(secret, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	var accepted struct {
		RunID   string `json:"run_id"`
		Trigger string `json:"trigger"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&accepted))
	require.NotEmpty(t, accepted.RunID)
	require.Equal(t, "github", accepted.Trigger)
	var run struct {
		Trigger  string `json:"trigger"`
		RunInput string `json:"run_input"`
	}
	ts.json(http.MethodGet, "/agents/writer/runs/"+accepted.RunID, "", "", http.StatusOK, &run)
	require.Equal(t, "github", run.Trigger)
	require.Equal(t, body, run.RunInput)
}

// TestReloadSchedules: a schedule added by a reload starts firing, and one
// removed by a reload stops.
func TestReloadSchedules(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	path := filepath.Join(ts.dir, "triggers.yaml")
	require.NoError(t, os.WriteFile(path, []byte(everySecond), 0o644))
	_, err := ts.eng.Reload(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		fires, err := ts.db.TriggerFires(t.Context(), "tick", 10)
		return err == nil && len(fires) >= 2
	}, 15*time.Second, 50*time.Millisecond)

	require.NoError(t, os.Remove(path))
	_, err = ts.eng.Reload(t.Context())
	require.NoError(t, err)
	// A tick queued just before the reload may still fire.
	time.Sleep(1200 * time.Millisecond)
	before, err := ts.db.TriggerFires(t.Context(), "tick", 100)
	require.NoError(t, err)
	time.Sleep(2500 * time.Millisecond)
	after, err := ts.db.TriggerFires(t.Context(), "tick", 100)
	require.NoError(t, err)
	require.Len(t, after, len(before), "a removed schedule kept firing")
}

// TestCatchUpOnce: after downtime, a catch_up: once schedule fires once at
// start for the missed ticks; a catch_up: skip one waits for its next tick.
func TestCatchUpOnce(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "troupe.db")
	db, err := store.Open(context.Background(), dsn, store.Options{})
	require.NoError(t, err)
	threeHoursAgo := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	for _, name := range []string{"hourly-once", "hourly-skip"} {
		require.NoError(t, db.RecordFire(t.Context(), name, "old-"+name, threeHoursAgo, threeHoursAgo))
	}
	require.NoError(t, db.Close())

	ts := startServer(t, withDatabase(dsn), withSpecs(`
kind: Trigger
name: hourly-once
target: {agent: writer}
schedule: {every: 1h, catch_up: once}
message: catch up
---
kind: Trigger
name: hourly-skip
target: {agent: writer}
schedule: {every: 1h}
message: skip
`))
	var fires []store.TriggerFire
	require.Eventually(t, func() bool {
		fires, err = ts.db.TriggerFires(t.Context(), "hourly-once", 10)
		return err == nil && len(fires) == 2
	}, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, threeHoursAgo.Add(time.Hour).UTC(), fires[0].ScheduledAt, "the first missed tick")
	time.Sleep(time.Second)
	fires, err = ts.db.TriggerFires(t.Context(), "hourly-once", 10)
	require.NoError(t, err)
	require.Len(t, fires, 2, "caught up more than once")
	skipped, err := ts.db.TriggerFires(t.Context(), "hourly-skip", 10)
	require.NoError(t, err)
	require.Len(t, skipped, 1, "a skip schedule caught up")
}
