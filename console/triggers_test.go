package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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
	// Firings are listed newest first by when they fired; two workers may
	// fire consecutive ticks out of order. By tick, consecutive firings are
	// consecutive ticks.
	fires = slices.Clone(fires)
	slices.SortFunc(fires, func(a, b store.TriggerFire) int { return b.ScheduledAt.Compare(a.ScheduledAt) })
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
			// The first tick waits for a leader to be elected; then wait
			// (generously: CI machines are loaded) for the three ticks after
			// it, and a little longer for a duplicate firing to show.
			var first store.TriggerFire
			require.Eventually(t, func() bool {
				fires, err := servers[0].db.TriggerFires(t.Context(), "tick", 100)
				if err != nil || len(fires) == 0 {
					return false
				}
				first = fires[len(fires)-1]
				return !fires[0].ScheduledAt.Before(first.ScheduledAt.Add(3 * time.Second))
			}, 45*time.Second, 20*time.Millisecond)
			time.Sleep(1500 * time.Millisecond)
			fires := requireTicksOnce(t, servers[0].db, "tick", 4)
			// The earliest firing now: under load a worker can record a tick
			// after the next one was recorded, so the oldest firing seen
			// while waiting may not be the first tick.
			first = fires[len(fires)-1]
			window := 0
			for _, f := range fires {
				if !f.ScheduledAt.After(first.ScheduledAt.Add(3 * time.Second)) {
					window++
				}
			}
			require.Equal(t, 4, window, "firings of the first four ticks")
			t.Logf("%d firings, one per tick, on %d replicas", len(fires), replicas)

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

// TestWebhookMessageTemplate: a webhook's message is a template over the
// request: the JSON body, the headers and the raw body.
func TestWebhookMessageTemplate(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef0123"
	ts := startServer(t, withSpecs(`
kind: Trigger
name: github
target: {agent: writer}
webhook: {path: push, secret: `+secret+`}
message: "{{ headers['X-Github-Event'] }} to {{ body.repository.full_name }}: {{ body.commits.map(c, c.message).join(', ') }} ({{ size(raw) }} bytes)"
`))
	body := `{"repository":{"full_name":"troupehq/troupe"},"commits":[{"message":"fix"},{"message":"docs"}]}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/hooks/push", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Hub-Signature-256", trigger.Sign(secret, []byte(body)))
	req.Header.Set("X-GitHub-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	var accepted struct {
		RunID string `json:"run_id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&accepted))
	var run struct {
		RunInput string `json:"run_input"`
	}
	ts.json(http.MethodGet, "/agents/writer/runs/"+accepted.RunID, "", "", http.StatusOK, &run)
	require.Equal(t, fmt.Sprintf("push to troupehq/troupe: fix, docs (%d bytes)", len(body)), run.RunInput)
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
	}, 45*time.Second, 50*time.Millisecond)

	require.NoError(t, os.Remove(path))
	_, err = ts.eng.Reload(t.Context())
	require.NoError(t, err)
	removed := time.Now()
	// Ticks up to the reload may still fire (their jobs were queued, and
	// the schedule is removed just after the reload); none after it.
	time.Sleep(4 * time.Second)
	fires, err := ts.db.TriggerFires(t.Context(), "tick", 100)
	require.NoError(t, err)
	for _, f := range fires {
		require.False(t, f.ScheduledAt.After(removed.Add(2*time.Second)), "a removed schedule fired its tick %s (removed at %s)", f.ScheduledAt, removed)
	}
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
		require.NoError(t, db.RecordFire(t.Context(), name, "old-"+name, trigger.SourceSchedule, threeHoursAgo, threeHoursAgo))
	}
	require.NoError(t, db.Close())

	started := time.Now()
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
	// Firings of ticks before the server started: a real hourly tick may
	// fire too if the test runs across an hour, and is not counted.
	missed := func(name string) []store.TriggerFire {
		fires, err := ts.db.TriggerFires(t.Context(), name, 10)
		require.NoError(t, err)
		var out []store.TriggerFire
		for _, f := range fires {
			if f.ScheduledAt.After(threeHoursAgo) && f.ScheduledAt.Before(started) {
				out = append(out, f)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(missed("hourly-once")) > 0 }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, threeHoursAgo.Add(time.Hour).UTC(), missed("hourly-once")[0].ScheduledAt, "the first missed tick")
	time.Sleep(1500 * time.Millisecond)
	require.Len(t, missed("hourly-once"), 1, "caught up more than once")
	require.Empty(t, missed("hourly-skip"), "a skip schedule caught up")
}

// triggerSpecs are a cron schedule in a time zone (02:00 in Paris on 29
// February) and a webhook, neither of which fires during a test by itself.
const triggerSpecs = `
kind: Trigger
name: nightly
description: The nightly digest
target: {agent: writer}
schedule: {cron: "0 2 29 2 *", timezone: Europe/Paris, catch_up: once}
message: Write the nightly digest.
---
kind: Trigger
name: github
target: {team: crew}
webhook: {path: github/push, secret: ` + hookSecret + `}
`

const hookSecret = "0123456789abcdef-secret"

type triggerJSON struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Target      struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"target"`
	Schedule *struct {
		Cron     string `json:"cron"`
		Every    string `json:"every"`
		Timezone string `json:"timezone"`
		CatchUp  string `json:"catch_up"`
	} `json:"schedule"`
	Webhook *struct {
		Path            string `json:"path"`
		URL             string `json:"url"`
		SignatureHeader string `json:"signature_header"`
	} `json:"webhook"`
	NextFireAt *time.Time `json:"next_fire_at"`
	LastFires  []struct {
		RunID     string    `json:"run_id"`
		SessionID string    `json:"session_id"`
		Source    string    `json:"source"`
		Tick      time.Time `json:"tick"`
		FiredAt   time.Time `json:"fired_at"`
		Status    string    `json:"status"`
	} `json:"last_fires"`
}

// TestTriggersAPI: GET /triggers lists every trigger with its schedule or
// webhook (never the secret), next fire time and last firings; GET
// /triggers/{name} shows one; POST /triggers/{name}/fire (admin) starts a
// background run recorded as a manual firing, which names its trigger and
// does not count for the catch-up.
func TestTriggersAPI(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys), withSpecs(triggerSpecs))

	status, body, _ := ts.do(http.MethodGet, "/triggers", readerKey, "", "")
	require.Equal(t, http.StatusOK, status, body)
	require.NotContains(t, body, hookSecret, "the webhook's secret is shown")
	var list []triggerJSON
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list, 2)
	hook, nightly := list[0], list[1] // sorted by name
	require.Equal(t, "github", hook.Name)
	require.Equal(t, "team", hook.Target.Kind)
	require.Equal(t, "crew", hook.Target.Name)
	require.Nil(t, hook.Schedule)
	require.Nil(t, hook.NextFireAt)
	require.NotNil(t, hook.Webhook)
	require.Equal(t, "github/push", hook.Webhook.Path)
	require.Equal(t, "/hooks/github/push", hook.Webhook.URL)
	require.Equal(t, "X-Hub-Signature-256", hook.Webhook.SignatureHeader)
	require.Empty(t, hook.LastFires)

	require.Equal(t, "nightly", nightly.Name)
	require.Equal(t, "The nightly digest", nightly.Description)
	require.Equal(t, "agent", nightly.Target.Kind)
	require.Nil(t, nightly.Webhook)
	require.NotNil(t, nightly.Schedule)
	require.Equal(t, "0 2 29 2 *", nightly.Schedule.Cron)
	require.Equal(t, "Europe/Paris", nightly.Schedule.Timezone)
	require.Equal(t, "once", nightly.Schedule.CatchUp)
	require.NotNil(t, nightly.NextFireAt)
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	next := nightly.NextFireAt.In(paris)
	require.Equal(t, []int{29, 2, 0, 0}, []int{next.Day(), next.Hour(), next.Minute(), next.Second()}, "the next tick is 02:00 in Paris on 29 February: %s", next)
	require.Equal(t, time.February, next.Month())
	require.True(t, next.After(time.Now()), "the next tick is in the future: %s", next)
	require.Less(t, time.Until(next), 4*366*24*time.Hour, "the next tick is the next leap day: %s", next)

	var one triggerJSON
	ts.json(http.MethodGet, "/triggers/nightly", readerKey, "", http.StatusOK, &one)
	require.Equal(t, nightly, one)
	status, body, _ = ts.do(http.MethodGet, "/triggers/nope", readerKey, "", "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body, "GET /triggers lists them")

	refused := []struct {
		name, path, key string
		want            int
	}{
		{"no key", "/triggers/nightly/fire", "", http.StatusUnauthorized},
		{"not admin", "/triggers/nightly/fire", readerKey, http.StatusForbidden},
		{"unknown trigger", "/triggers/nope/fire", adminKey, http.StatusNotFound},
	}
	for _, tc := range refused {
		status, body, _ := ts.do(http.MethodPost, tc.path, tc.key, "", "")
		require.Equal(t, tc.want, status, "%s: %s", tc.name, body)
	}
	fires, err := ts.db.TriggerFires(t.Context(), "nightly", 10)
	require.NoError(t, err)
	require.Empty(t, fires, "a refused run now fired")

	var fired struct {
		RunID     string `json:"run_id"`
		SessionID string `json:"session_id"`
		Trigger   string `json:"trigger"`
	}
	ts.json(http.MethodPost, "/triggers/nightly/fire", adminKey, "", http.StatusAccepted, &fired)
	require.NotEmpty(t, fired.RunID)
	require.NotEmpty(t, fired.SessionID)
	require.Equal(t, "nightly", fired.Trigger)

	var run struct {
		Status   string `json:"status"`
		Trigger  string `json:"trigger"`
		RunInput string `json:"run_input"`
	}
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/agents/writer/runs/"+fired.RunID, adminKey, "", http.StatusOK, &run)
		return run.Status == "COMPLETED"
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, "nightly", run.Trigger)
	require.Equal(t, "Write the nightly digest.", run.RunInput)

	ts.json(http.MethodGet, "/triggers/nightly", readerKey, "", http.StatusOK, &one)
	require.Len(t, one.LastFires, 1)
	f := one.LastFires[0]
	require.Equal(t, fired.RunID, f.RunID)
	require.Equal(t, fired.SessionID, f.SessionID)
	require.Equal(t, trigger.SourceManual, f.Source)
	require.Equal(t, "COMPLETED", f.Status)
	require.WithinDuration(t, time.Now(), f.FiredAt, time.Minute)
	require.Equal(t, *nightly.NextFireAt, *one.NextFireAt, "run now moved the schedule")
	_, ok, err := ts.db.LastFire(t.Context(), "nightly")
	require.NoError(t, err)
	require.False(t, ok, "run now counts for the catch-up")

	// A webhook trigger runs now too, with no body: its run gets a line
	// naming the trigger.
	ts.json(http.MethodPost, "/triggers/github/fire", adminKey, "", http.StatusAccepted, &fired)
	require.Equal(t, "github", fired.Trigger)
	ts.json(http.MethodGet, "/teams/crew/runs/"+fired.RunID, adminKey, "", http.StatusOK, &run)
	require.Equal(t, "github", run.Trigger)
	require.True(t, strings.HasPrefix(run.RunInput, "Trigger github fired for "), run.RunInput)
}

// TestConsoleTriggersPage renders the triggers page (next fire time, last
// runs with links to their sessions) and runs a trigger with its Run now
// button, which admins alone see and which posts like the console's other
// forms (same origin only).
func TestConsoleTriggersPage(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys), withSpecs(triggerSpecs))

	resp, body := ts.page("GET", "/ui/triggers", readerKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	d := doc(t, body)
	require.Equal(t, "page", d.Find("[data-testid=nav-triggers]").AttrOr("aria-current", ""))
	cards := d.Find("[data-testid=trigger]")
	require.Equal(t, 2, cards.Length())
	nightly := d.Find("[data-trigger=nightly]")
	require.Contains(t, nightly.Find("[data-testid=trigger-when]").Text(), "0 2 29 2 * (Europe/Paris)")
	require.Contains(t, nightly.Find("[data-testid=trigger-target]").Text(), "agent writer")
	next := nightly.Find("[data-testid=trigger-next] time")
	require.True(t, strings.HasPrefix(next.Text(), "in "), next.Text())
	at, err := time.Parse(time.RFC3339, next.AttrOr("datetime", ""))
	require.NoError(t, err)
	require.Equal(t, 2, at.In(must(time.LoadLocation("Europe/Paris"))).Hour())
	require.Equal(t, 1, nightly.Find("[data-testid=no-fires]").Length())
	hook := d.Find("[data-trigger=github]")
	require.Contains(t, hook.Find("[data-testid=trigger-when]").Text(), "POST /hooks/github/push")
	require.Zero(t, hook.Find("[data-testid=trigger-next]").Length())
	require.NotContains(t, body, hookSecret)
	require.Zero(t, d.Find("[data-testid=trigger-fire]").Length(), "a reader sees Run now")

	resp, body = ts.page("GET", "/ui/triggers", adminKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 2, doc(t, body).Find("[data-testid=trigger-fire]").Length())

	path := "/ui/triggers/nightly/fire"
	resp, _ = ts.page("POST", path, adminKey, url.Values{}, "Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = ts.page("POST", path, readerKey, url.Values{})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	fires, err := ts.db.TriggerFires(t.Context(), "nightly", 10)
	require.NoError(t, err)
	require.Empty(t, fires, "a refused Run now fired")
	resp, _ = ts.page("POST", "/ui/triggers/nope/fire", adminKey, url.Values{}, "Sec-Fetch-Site", "same-origin", "Origin", ts.url)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	resp, _ = ts.page("POST", path, adminKey, url.Values{}, "Sec-Fetch-Site", "same-origin", "Origin", ts.url)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	fires, err = ts.db.TriggerFires(t.Context(), "nightly", 10)
	require.NoError(t, err)
	require.Len(t, fires, 1)
	runID := fires[0].RunID
	require.Equal(t, "/ui/triggers?fired=nightly&run="+runID, resp.Header.Get("Location"))
	resp, body = ts.page("GET", resp.Header.Get("Location"), adminKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	d = doc(t, body)
	require.Contains(t, d.Find("[data-testid=flash]").Text(), "Trigger nightly started run "+runID)
	row := d.Find("[data-trigger=nightly] [data-testid=trigger-fire-row]")
	require.Equal(t, 1, row.Length())
	require.Equal(t, runID, row.AttrOr("data-run-id", ""))
	require.Equal(t, "manual", row.AttrOr("data-source", ""))
	require.Equal(t, "/ui/sessions/"+fires[0].SessionID, row.Find("[data-testid=fire-session]").AttrOr("href", ""))
	require.Equal(t, 1, d.Find("[data-trigger=github] [data-testid=no-fires]").Length())
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestExampleNightlyTrigger serves agents.d's nightly trigger with the hello
// agent it runs, offline on echo: its next tick is 02:00 in Paris, and run
// now completes a run of hello with the trigger's message.
func TestExampleNightlyTrigger(t *testing.T) {
	t.Parallel()
	var docs []string
	for _, f := range []string{"hello.yaml", "nightly.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "agents.d", f))
		require.NoError(t, err)
		docs = append(docs, string(b))
	}
	ts := startServer(t, withSpecs(strings.Join(docs, "\n---\n")))
	var tr triggerJSON
	ts.json(http.MethodGet, "/triggers/nightly-hello", "", "", http.StatusOK, &tr)
	require.Equal(t, "hello", tr.Target.Name)
	require.NotNil(t, tr.NextFireAt)
	next := tr.NextFireAt.In(must(time.LoadLocation("Europe/Paris")))
	require.Equal(t, []int{2, 0}, []int{next.Hour(), next.Minute()}, next.String())

	var fired struct {
		RunID string `json:"run_id"`
	}
	ts.json(http.MethodPost, "/triggers/nightly-hello/fire", "", "", http.StatusAccepted, &fired)
	var run struct {
		Status   string `json:"status"`
		Content  string `json:"content"`
		RunInput string `json:"run_input"`
		Trigger  string `json:"trigger"`
		Model    string `json:"model"`
	}
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/agents/hello/runs/"+fired.RunID, "", "", http.StatusOK, &run)
		return run.Status == "COMPLETED"
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, "What is today's date? Answer in one line.", run.RunInput)
	require.Equal(t, "nightly-hello", run.Trigger)
	require.Equal(t, "echo", run.Model)
	require.Contains(t, run.Content, "What is today's date?")
}

// TestTriggerFiresWorkflow: a trigger may target a workflow; its firing
// (here "run now") is a background workflow run with the trigger's input,
// which executes every step and names its trigger.
func TestTriggerFiresWorkflow(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs+`
---
kind: Trigger
name: each-night
target: {workflow: each}
schedule: {cron: "0 0 29 2 *"}
input: {items: [a, b]}
`))
	var fired struct {
		RunID string `json:"run_id"`
	}
	ts.json(http.MethodPost, "/triggers/each-night/fire", "", "", http.StatusAccepted, &fired)
	var run wfRun
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/workflows/each/runs/"+fired.RunID, "", "", http.StatusOK, &run)
		return run.Status == "COMPLETED" || run.Status == "ERROR"
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, "COMPLETED", run.Status, run.Error)
	var names []string
	for _, s := range run.Steps {
		require.Equal(t, "COMPLETED", s.Status, s.Name)
		names = append(names, s.Name)
	}
	require.NotEmpty(t, names)
	var tagged struct {
		Trigger string `json:"trigger"`
	}
	ts.json(http.MethodGet, "/workflows/each/runs/"+fired.RunID, "", "", http.StatusOK, &tagged)
	require.Equal(t, "each-night", tagged.Trigger)
}
