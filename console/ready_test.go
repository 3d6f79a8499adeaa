package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console"
)

// TestReadiness: /health stays the liveness probe (200 while the process
// runs), while /health/ready answers 503 once the database cannot serve runs,
// without a key and without revealing the database's error.
func TestReadiness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		breakDB func(t *testing.T, ts *testServer, path string)
	}{
		{"database closed", func(t *testing.T, ts *testServer, _ string) { require.NoError(t, ts.db.Close()) }},
		{"database file corrupted", func(t *testing.T, _ *testServer, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteAt([]byte("this is not a SQLite database, its header is gone!!"), 0)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "troupe.db")
			ts := startServer(t, withDatabase(path), withKeys("admin-key-123456=admin"))

			status, body, _ := ts.do(http.MethodGet, "/health/ready", "", "", "")
			require.Equal(t, http.StatusOK, status, body)
			require.JSONEq(t, `{"status":"ok"}`, body)

			tt.breakDB(t, ts, path)

			status, body, _ = ts.do(http.MethodGet, "/health/ready", "", "", "")
			require.Equal(t, http.StatusServiceUnavailable, status, body)
			var got map[string]string
			require.NoError(t, json.Unmarshal([]byte(body), &got))
			require.Equal(t, map[string]string{"status": "unavailable", "detail": "the database is not answering; see the server log"}, got)

			status, body, _ = ts.do(http.MethodGet, "/health", "", "", "")
			require.Equal(t, http.StatusOK, status, body)
		})
	}
}

// TestReadinessFailsWhileDraining: once shutdown begins, the readiness probe
// answers 503 so that a load balancer sends no new work to the replica, while
// the runs in flight finish.
func TestReadinessFailsWhileDraining(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ready := func() (int, string) {
		// In process: the listener stops accepting as soon as shutdown
		// begins, but a load balancer's kept-alive probe still reaches the
		// handler.
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/health/ready", nil)
		req.Host = strings.TrimPrefix(ts.url, "http://")
		rec := httptest.NewRecorder()
		console.Handler(ts.srv).ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	// Over the network first: once it answers, Serve has set up the host
	// check the in-process probe goes through too.
	status, body, _ := ts.do(http.MethodGet, "/health/ready", "", "", "")
	require.Equal(t, http.StatusOK, status, body)
	status, body = ready()
	require.Equal(t, http.StatusOK, status, body)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.url+"/agents/writer/runs", strings.NewReader(`{"message":"please block"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()

	stopped := make(chan struct{})
	go func() { defer close(stopped); ts.stop() }()
	require.Eventually(t, func() bool {
		status, body = ready()
		return status == http.StatusServiceUnavailable
	}, 5*time.Second, 10*time.Millisecond)
	require.JSONEq(t, `{"status":"unavailable","detail":"the server is shutting down"}`, body)
	select {
	case <-stopped:
		t.Fatal("the server stopped before its run finished")
	default:
	}
	cancel() // the client goes away: its run ends and the drain with it
	<-stopped
}

// TestConfigNamesTheReplica: GET /config tells which replica answered and
// the spec version it serves, so an operator behind a load balancer can tell
// replicas apart and see whether they agree.
func TestConfigNamesTheReplica(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id, want string
	}{
		{"chosen", "replica-a", "replica-a"},
		{"default", "", console.DefaultReplicaID()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, withOptions(func(o *console.Options) { o.ReplicaID = tt.id }))
			var cfg struct {
				ReplicaID   string `json:"replica_id"`
				SpecVersion string `json:"spec_version"`
			}
			ts.json(http.MethodGet, "/config", "", "", http.StatusOK, &cfg)
			require.Equal(t, tt.want, cfg.ReplicaID)
			require.NotEmpty(t, cfg.SpecVersion)
			require.Equal(t, ts.eng.Current().Version(), cfg.SpecVersion)
		})
	}
}

// TestDrainDelayKeepsAccepting: with a drain delay, shutdown first only fails
// the readiness probe, seen on new connections as a load balancer's probe
// would see it, and keeps serving requests (a run among them) until the
// delay is over; then the listener closes.
func TestDrainDelayKeepsAccepting(t *testing.T) {
	t.Parallel()
	const delay = 2 * time.Second
	ts := startServer(t, withOptions(func(o *console.Options) { o.DrainDelay = delay }))
	fresh := func(path, body string) (int, string, error) {
		// A new connection each time: no kept-alive connection hides a
		// closed listener.
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		method := http.MethodGet
		if body != "" {
			method = http.MethodPost
		}
		req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	status, body, err := fresh("/health/ready", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, body)

	begun := time.Now()
	stopped := make(chan struct{})
	go func() { defer close(stopped); ts.stop() }()
	require.Eventually(t, func() bool {
		status, _, err := fresh("/health/ready", "")
		return err == nil && status == http.StatusServiceUnavailable
	}, delay/2, 10*time.Millisecond, "readiness must fail on a new connection while the delay runs")
	status, body, err = fresh("/agents/writer/runs", `{"message":"hi","stream":false}`)
	require.NoError(t, err, "a request during the delay must still be served")
	require.Equal(t, http.StatusOK, status, body)
	require.Less(t, time.Since(begun), delay, "the checks above must run within the delay")

	<-stopped
	require.GreaterOrEqual(t, time.Since(begun), delay, "the server stopped before its drain delay was over")
	_, _, err = fresh("/health", "")
	require.Error(t, err, "the listener must be closed after the delay")
}
