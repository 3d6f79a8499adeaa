package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/store"
)

const (
	rlAdminKey  = "sk-admin-0123456789abcdef"
	rlAppKey    = "sk-app-0123456789abcdef00"
	rlOtherKey  = "sk-other-0123456789abcdef"
	rlAlice1Key = "sk-alice1-0123456789abcdef"
	rlAlice2Key = "sk-alice2-0123456789abcdef"
	rlBobKey    = "sk-bob-0123456789abcdef00"
)

// rateKeys are the keys of the rate limit tests: app is limited as given,
// the others not (alice's two keys and bob's are bound to their users).
func rateKeys(t *testing.T, appLimit string) *auth.Keyring {
	t.Helper()
	doc := "keys:\n" +
		"  - {name: admin, key: " + rlAdminKey + ", scopes: [admin]}\n" +
		"  - {name: other, key: " + rlOtherKey + ", scopes: [admin]}\n" +
		"  - {name: alice-1, key: " + rlAlice1Key + ", scopes: [agents:read, agents:run], user_id: alice}\n" +
		"  - {name: alice-2, key: " + rlAlice2Key + ", scopes: [agents:read, agents:run], user_id: alice}\n" +
		"  - {name: bob, key: " + rlBobKey + ", scopes: [agents:read, agents:run], user_id: bob}\n"
	if appLimit != "" {
		doc += "  - {name: app, key: " + rlAppKey + ", scopes: [admin], rate_limit: " + appLimit + "}\n"
	}
	path := filepath.Join(t.TempDir(), "keys.yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	keys, err := auth.ParseKeys("")
	require.NoError(t, err)
	require.NoError(t, auth.LoadKeysFile(path, keys))
	return keys
}

// withLimits limits callers: keys by their keys file entries, users by user;
// the clock stands still at now unless advanced, so waits are exact.
func withLimits(keys *auth.Keyring, user auth.RateLimit, now func() time.Time) serverOption {
	return func(h *harness) {
		h.keys = keys
		h.limits = func(db *store.DB) *ratelimit.Limiter {
			return ratelimit.New(ratelimit.Options{Store: db, Keys: keys, User: user, Now: now})
		}
	}
}

func fixedClock() func() time.Time {
	at := time.Unix(1_700_000_000, 0)
	return func() time.Time { return at }
}

// detail is the AgentOS error body.
func detail(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Detail string `json:"detail"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	return e.Detail
}

// TestRateLimitKeyRequests: a key limited to one request every two seconds
// with a burst of two gets two requests through, then 429 with Retry-After
// and an error naming the limit; health probes, other keys and the
// metrics scrape are not limited, a streamed run is refused before its
// stream starts, and the refusals are counted in Prometheus.
func TestRateLimitKeyRequests(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withLimits(rateKeys(t, "{requests_per_second: 0.5, burst: 2}"), auth.RateLimit{}, fixedClock()))

	ts.json("GET", "/agents", rlAppKey, "", http.StatusOK, nil)
	ts.json("GET", "/agents/calc", rlAppKey, "", http.StatusOK, nil)
	status, body, h := ts.do("GET", "/agents", rlAppKey, "", "")
	require.Equal(t, http.StatusTooManyRequests, status, body)
	require.Equal(t, "2", h.Get("Retry-After"))
	require.Equal(t, "application/json; charset=utf-8", h.Get("Content-Type"))
	require.Equal(t, "rate limit exceeded for key:app: more than 0.5 requests per second; retry after 2 s", detail(t, body))

	status, body, h = ts.do("POST", "/agents/writer/runs", rlAppKey, "application/json", `{"message":"hi","stream":true}`)
	require.Equal(t, http.StatusTooManyRequests, status, body)
	require.Equal(t, "2", h.Get("Retry-After"))
	require.NotContains(t, h.Get("Content-Type"), "text/event-stream", "refused before the stream starts")

	status, _, _ = ts.do("GET", "/health", "", "", "")
	require.Equal(t, http.StatusOK, status)
	for range 5 {
		ts.json("GET", "/agents", rlOtherKey, "", http.StatusOK, nil)
	}
	for range 3 {
		status, body, _ = ts.do("GET", "/metrics/prometheus", rlAppKey, "", "")
		require.Equal(t, http.StatusOK, status, "scrapes are not limited")
	}
	require.Contains(t, body, `troupe_rate_limited_total{limit="requests",subject_kind="key"} 2`)
	require.NotContains(t, body, `limit="concurrent_runs"`)

	// The API's document tells clients about the 429.
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Description string `json:"description"`
			} `json:"responses"`
		} `json:"paths"`
	}
	ts.json("GET", "/openapi.json", rlOtherKey, "", http.StatusOK, &doc)
	require.Contains(t, doc.Paths["/agents"]["get"].Responses["429"].Description, "a rate limit of the API key or the user is exceeded")
	require.Contains(t, doc.Paths["/agents/writer/runs"]["post"].Responses["429"].Description, "too many runs are queued; retry after Retry-After seconds; or a rate limit")
}

// TestRateLimitConcurrentRuns: a key allowed one run at a time is refused a
// second run, foreground, background, or through the OpenAI surface, while
// a blocked run holds the slot, and is let through once that run ends; a
// background run holds the slot the same way.
func TestRateLimitConcurrentRuns(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withLimits(rateKeys(t, "{concurrent_runs: 1}"), auth.RateLimit{}, time.Now))

	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.url+"/agents/writer/runs", strings.NewReader(`{"message":"please block"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+rlAppKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	blocked := resp.Header.Get("X-Run-Id")

	refused := []struct{ path, body string }{
		{"/agents/writer/runs", `{"message":"hi","stream":false}`},
		{"/agents/writer/runs", `{"message":"hi","background":true}`},
		{"/teams/crew/runs", `{"message":"hi"}`},
		{"/v1/chat/completions", `{"model":"writer","messages":[{"role":"user","content":"hi"}]}`},
	}
	for _, r := range refused {
		status, body, h := ts.do("POST", r.path, rlAppKey, "application/json", r.body)
		require.Equal(t, http.StatusTooManyRequests, status, r.path+": "+body)
		require.Equal(t, "1", h.Get("Retry-After"))
		require.Contains(t, body, "concurrent runs limit reached for key:app: 1 of 1 runs are pending or running")
	}
	// Reading is not a run; another key has its own runs.
	ts.json("GET", "/agents/writer/runs/"+blocked, rlAppKey, "", http.StatusOK, nil)
	ts.json("POST", "/agents/writer/runs", rlOtherKey, `{"message":"hi","stream":false}`, http.StatusOK, nil)

	cancel() // the client goes away: the run ends CANCELLED
	ts.waitStatus(t, blocked, "CANCELLED")
	ts.json("POST", "/agents/writer/runs", rlAppKey, `{"message":"hi","stream":false}`, http.StatusOK, nil)

	// A background run holds the slot until it ends too.
	var bg struct {
		RunID string `json:"run_id"`
	}
	ts.json("POST", "/agents/writer/runs", rlAppKey, `{"message":"please block","background":true}`, http.StatusAccepted, &bg)
	status, body, _ := ts.do("POST", "/agents/writer/runs", rlAppKey, "application/json", `{"message":"hi","stream":false}`)
	require.Equal(t, http.StatusTooManyRequests, status, body)
	// Cancelling needs it started (a PENDING run counts as well, above).
	ts.waitStatus(t, bg.RunID, "RUNNING")
	ts.json("POST", "/agents/writer/runs/"+bg.RunID+"/cancel", rlAppKey, "", http.StatusOK, nil)
	ts.waitStatus(t, bg.RunID, "CANCELLED")
	ts.json("POST", "/agents/writer/runs", rlAppKey, `{"message":"hi","stream":false}`, http.StatusOK, nil)

	_, body, _ = ts.do("GET", "/metrics/prometheus", rlAdminKey, "", "")
	require.Contains(t, body, `troupe_rate_limited_total{limit="concurrent_runs",subject_kind="key"} 5`)
}

// TestRateLimitConcurrentStartsAtOnce: a dozen runs asked for at once by a
// key allowed two at a time start exactly two; the rest are refused, and a
// refused or failed request gives back no slot it did not take.
func TestRateLimitConcurrentStartsAtOnce(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withLimits(rateKeys(t, "{concurrent_runs: 2}"), auth.RateLimit{}, time.Now))
	// A request that starts no run (an unknown agent) leaves no slot taken.
	ts.json("POST", "/agents/nobody/runs", rlAppKey, `{"message":"hi","stream":false}`, http.StatusNotFound, nil)

	var mu sync.Mutex
	var started []string
	refused := 0
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			status, body, _ := ts.do("POST", "/agents/writer/runs", rlAppKey, "application/json", `{"message":"please block","background":true}`)
			mu.Lock()
			defer mu.Unlock()
			switch status {
			case http.StatusAccepted:
				var run struct {
					RunID string `json:"run_id"`
				}
				if err := json.Unmarshal([]byte(body), &run); err == nil {
					started = append(started, run.RunID)
				}
			case http.StatusTooManyRequests:
				refused++
			default:
				t.Errorf("status %d: %s", status, body)
			}
		})
	}
	wg.Wait()
	require.Len(t, started, 2, "exactly the limit starts")
	require.Equal(t, 10, refused)
	for _, id := range started {
		ts.waitStatus(t, id, "RUNNING")
		ts.json("POST", "/agents/writer/runs/"+id+"/cancel", rlAppKey, "", http.StatusOK, nil)
		ts.waitStatus(t, id, "CANCELLED")
	}
	ts.json("POST", "/agents/writer/runs", rlAppKey, `{"message":"hi","stream":false}`, http.StatusOK, nil)
}

// TestRateLimitUsers: the per-user limit (--user-rate-limit and friends)
// is shared by every key bound to one user, applies to the user_id an
// unbound key names, and falls back to the client address; a console chat
// counts as a run.
func TestRateLimitUsers(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withLimits(rateKeys(t, ""), auth.RateLimit{RequestsPerSecond: 0.25, Burst: 3, ConcurrentRuns: 1}, fixedClock()))

	ts.json("GET", "/agents", rlAlice1Key, "", http.StatusOK, nil)
	ts.json("GET", "/agents", rlAlice2Key, "", http.StatusOK, nil)
	ts.json("GET", "/agents", rlAlice1Key, "", http.StatusOK, nil)
	status, body, h := ts.do("GET", "/agents", rlAlice2Key, "", "")
	require.Equal(t, http.StatusTooManyRequests, status, body)
	require.Equal(t, "4", h.Get("Retry-After"))
	require.Equal(t, "rate limit exceeded for user:alice: more than 0.25 requests per second; retry after 4 s", detail(t, body))
	ts.json("GET", "/agents", rlBobKey, "", http.StatusOK, nil)

	// An unbound key acts for the user it names: in the query, or in a
	// run's body (JSON or form).
	for range 3 {
		ts.json("GET", "/sessions?user_id=carol", rlAdminKey, "", http.StatusOK, nil)
	}
	status, body, _ = ts.do("POST", "/agents/calc/runs", rlAdminKey, "application/json", `{"message":"hi","user_id":"carol","stream":false}`)
	require.Equal(t, http.StatusTooManyRequests, status, body)
	require.Contains(t, body, "user:carol")
	status, body, _ = ts.do("POST", "/agents/calc/runs", rlAdminKey, "application/x-www-form-urlencoded", url.Values{"message": {"hi"}, "user_id": {"carol"}}.Encode())
	require.Equal(t, http.StatusTooManyRequests, status, body)
	// The peeked body still reaches the handler whole.
	var run struct {
		UserID string `json:"user_id"`
	}
	ts.json("POST", "/agents/writer/runs", rlAdminKey, `{"message":"hello","user_id":"dave","stream":false}`, http.StatusOK, &run)
	require.Equal(t, "dave", run.UserID)

	// Without a user, the admin key's requests are the client address's;
	// uploads count like any request and still work.
	status, out := upload(t, ts, rlAdminKey, nil, filepath.Join("..", "engine", "knowledge", "reader", "testdata", "notes.txt"))
	require.Equal(t, http.StatusAccepted, status, out)
	for range 2 {
		ts.json("GET", "/agents", rlAdminKey, "", http.StatusOK, nil)
	}
	status, body, _ = ts.do("GET", "/agents", rlAdminKey, "", "")
	require.Equal(t, http.StatusTooManyRequests, status, body)
	require.Contains(t, body, "ip:127.0.0.1")

	// Bob's run blocks; his console chat is a second run.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.url+"/agents/writer/runs", strings.NewReader(`{"message":"please block"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+rlBobKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	chat, body := ts.page("POST", "/ui/agents/helpdesk/chat", rlBobKey, url.Values{"message": {"hi"}})
	require.Equal(t, http.StatusTooManyRequests, chat.StatusCode, body)
	require.Equal(t, "1", chat.Header.Get("Retry-After"))
	require.Contains(t, body, "concurrent runs limit reached for user:bob")

	_, body, _ = ts.do("GET", "/metrics/prometheus", rlOtherKey, "", "")
	for _, want := range []string{
		`troupe_rate_limited_total{limit="requests",subject_kind="user"} 3`,
		`troupe_rate_limited_total{limit="requests",subject_kind="ip"} 1`,
		`troupe_rate_limited_total{limit="concurrent_runs",subject_kind="user"} 1`,
	} {
		require.Contains(t, body, want)
	}
}

// TestRateLimitAcrossReplicas: two servers on one PostgreSQL database
// enforce one limit: requests alternating between them are limited as if
// they went to one.
func TestRateLimitAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("TROUPE_TEST_POSTGRES_DSN not set")
	}
	db := pgSchema(t, dsn)
	keys := rateKeys(t, "{requests_per_second: 0.1, burst: 4, concurrent_runs: 1}")
	a := startServer(t, withDatabase(db), withLimits(keys, auth.RateLimit{}, fixedClock()))
	b := startServer(t, withDatabase(db), withLimits(keys, auth.RateLimit{}, fixedClock()))

	for i := range 4 {
		ts := []*testServer{a, b}[i%2]
		ts.json("GET", "/agents", rlAppKey, "", http.StatusOK, nil)
	}
	for _, ts := range []*testServer{a, b} {
		status, body, h := ts.do("GET", "/agents", rlAppKey, "", "")
		require.Equal(t, http.StatusTooManyRequests, status, body)
		require.Equal(t, "10", h.Get("Retry-After"))
	}
}

// TestRateLimitAcrossReplicasRuns: a run held on one replica counts on the
// other.
func TestRateLimitAcrossReplicasRuns(t *testing.T) {
	t.Parallel()
	dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("TROUPE_TEST_POSTGRES_DSN not set")
	}
	db := pgSchema(t, dsn)
	keys := rateKeys(t, "{concurrent_runs: 1}")
	a := startServer(t, withDatabase(db), withLimits(keys, auth.RateLimit{}, time.Now))
	b := startServer(t, withDatabase(db), withLimits(keys, auth.RateLimit{}, time.Now))

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, a.url+"/agents/writer/runs", strings.NewReader(`{"message":"please block"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+rlAppKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	status, body, _ := b.do("POST", "/agents/writer/runs", rlAppKey, "application/json", `{"message":"hi","stream":false}`)
	require.Equal(t, http.StatusTooManyRequests, status, body)
	require.Regexp(t, regexp.MustCompile(`concurrent runs limit reached for key:app`), body)
}

// waitStatus waits for the writer's run runID to reach status.
func (ts *testServer) waitStatus(t *testing.T, runID, status string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var run struct {
			Status string `json:"status"`
		}
		ts.json("GET", "/agents/writer/runs/"+runID, rlAdminKey, "", http.StatusOK, &run)
		return run.Status == status
	}, 10*time.Second, 20*time.Millisecond)
}

// TestRateLimitContinue: a paused workflow run holds no slot, continuing it
// takes one, and a continue over the limit is refused until the run holding
// the slot ends.
func TestRateLimitContinue(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(runWorkflowSpecs), withLimits(rateKeys(t, "{concurrent_runs: 1}"), auth.RateLimit{}, time.Now))
	start := func() string {
		_, hdr := ts.stream("/workflows/review/runs", rlAppKey, "application/json", `{"message": "x"}`)
		ts.waitWorkflow(t, hdr.Get("X-Run-Id"), "PAUSED")
		return hdr.Get("X-Run-Id")
	}
	a, b := start(), start() // a paused run holds no slot
	// The publish step's input is the comment: "block" holds the run.
	ts.json("POST", "/workflows/review/runs/"+a+"/continue", rlAppKey, `{"approved": true, "comment": "block"}`, http.StatusAccepted, nil)
	ts.waitWorkflow(t, a, "RUNNING")
	status, body, h := ts.do("POST", "/workflows/review/runs/"+b+"/continue", rlAppKey, "application/json", `{"approved": true, "comment": "fine"}`)
	require.Equal(t, http.StatusTooManyRequests, status, body)
	require.Equal(t, "1", h.Get("Retry-After"))
	require.Contains(t, detail(t, body), "concurrent runs limit reached for key:app: 1 of 1")
	ts.waitWorkflow(t, b, "PAUSED") // refused before anything was decided

	ts.json("POST", "/workflows/review/runs/"+a+"/cancel", rlAppKey, "", http.StatusOK, nil)
	ts.waitWorkflow(t, a, "CANCELLED")
	ts.json("POST", "/workflows/review/runs/"+b+"/continue", rlAppKey, `{"approved": true, "comment": "fine"}`, http.StatusAccepted, nil)
	ts.waitWorkflow(t, b, "COMPLETED")
}

// waitWorkflow waits for the review workflow's run runID to reach status.
func (ts *testServer) waitWorkflow(t *testing.T, runID, status string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var run struct {
			Status string `json:"status"`
		}
		ts.json("GET", "/workflows/review/runs/"+runID, rlAdminKey, "", http.StatusOK, &run)
		return run.Status == status
	}, 10*time.Second, 20*time.Millisecond)
}
