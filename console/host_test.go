package console_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console"
)

// hostRequest sends a request to the test server (on 127.0.0.1) carrying
// another Host header, as a browser does for a name rebound to 127.0.0.1.
func (ts *testServer) hostRequest(t *testing.T, method, path, host string, headers ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, ts.url+path, strings.NewReader(""))
	require.NoError(t, err)
	req.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

// TestHostCheckRefusesRebinding: a page on a name the attacker re-pointed at
// 127.0.0.1 reaches the server with that name in Host; the server answers
// only its own addresses and the names its operator allowed, on every route,
// with or without API keys.
func TestHostCheckRefusesRebinding(t *testing.T) {
	t.Parallel()
	allowed := []string{"troupe.example.com", "*.apps.example.com", "pinned.example.com:8443"}
	open := startServer(t, withOptions(func(o *console.Options) { o.AllowedHosts = append(allowed, "*") }))
	_, port, err := net.SplitHostPort(strings.TrimPrefix(open.url, "http://"))
	require.NoError(t, err)
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1:" + port, true},
		{"localhost:" + port, true},
		{"LOCALHOST.:" + port, true},
		{"[::1]:" + port, true},
		{"127.0.0.2:" + port, true},
		{"localhost:8080", true}, // an SSH tunnel's port
		{"localhost", true},
		{"troupe.example.com", true},
		{"troupe.example.com:" + port, true},
		{"a.apps.example.com", true},
		{"b.a.apps.example.com:443", true},
		{"pinned.example.com:8443", true},
		{"pinned.example.com", false},
		{"apps.example.com", false},
		{"evil.example:" + port, false},
		{"evil.example", false},
		{"127.0.0.1.evil.example:" + port, false},
		{"localhost.evil.example:" + port, false},
		{"troupe.example.com.evil.example", false},
		{"evilapps.example.com", false},
		{"10.1.2.3:" + port, false},
		{"[fe80::1]:" + port, false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			// Without keys "*" is ignored: the host check stays on.
			for _, path := range []string{"/health", "/sessions", "/agents", "/static/app.css", "/openapi.json"} {
				status, body, _ := open.hostRequest(t, http.MethodGet, path, tt.host)
				if tt.want {
					require.NotEqual(t, http.StatusMisdirectedRequest, status, "%s %s", path, body)
				} else {
					require.Equal(t, http.StatusMisdirectedRequest, status, path)
					require.Contains(t, body, "--allowed-hosts")
				}
			}
		})
	}

	// Everything an attacker's page wanted is refused, console included,
	// even when the browser calls the request same-origin.
	evil := "evil.example:" + port
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/config/reload"}, {http.MethodDelete, "/sessions"}, {http.MethodPost, "/agents/helpdesk/runs"},
		{http.MethodPost, "/ui/config/reload"}, {http.MethodPost, "/ui/sessions/x/delete"}, {http.MethodGet, "/ui/sessions"},
	} {
		status, _, hdr := open.hostRequest(t, r.method, r.path, evil, "Origin", "http://"+evil, "Sec-Fetch-Site", "same-origin")
		require.Equal(t, http.StatusMisdirectedRequest, status, "%s %s", r.method, r.path)
		require.Empty(t, hdr.Get("Access-Control-Allow-Origin"))
	}
	status, body, hdr := open.hostRequest(t, http.MethodGet, "/ui/sessions", evil, "Accept", "text/html")
	require.Equal(t, http.StatusMisdirectedRequest, status)
	require.Contains(t, hdr.Get("Content-Type"), "text/html", "browsers get a page that says what to do")
	require.Contains(t, body, "--allowed-hosts")
	status, body, _ = open.hostRequest(t, http.MethodGet, "/sessions", evil)
	require.Equal(t, http.StatusMisdirectedRequest, status)
	require.JSONEq(t, `{"detail": "this server does not answer to the host \"`+evil+`\": if that name is yours (say, behind a reverse proxy), start troupe with --allowed-hosts \"evil.example\" (env TROUPE_ALLOWED_HOSTS)"}`, body)

	// With keys the check is on by default too.
	keyed := startServer(t, withKeys(keys))
	status, _, _ = keyed.hostRequest(t, http.MethodGet, "/health", evil)
	require.Equal(t, http.StatusMisdirectedRequest, status)
	status, _, _ = keyed.hostRequest(t, http.MethodGet, "/sessions", evil, "Authorization", "Bearer "+adminKey)
	require.Equal(t, http.StatusMisdirectedRequest, status)

	// An operator with keys may turn it off; an origin equal to a foreign
	// Host is then still not taken for the server's own by CORS.
	anyHost := startServer(t, withKeys(keys), withOptions(func(o *console.Options) { o.AllowedHosts = []string{"*"} }))
	status, _, _ = anyHost.hostRequest(t, http.MethodGet, "/health", evil)
	require.Equal(t, http.StatusOK, status)
	status, _, _ = anyHost.hostRequest(t, http.MethodGet, "/health", evil, "Origin", "http://"+evil)
	require.Equal(t, http.StatusForbidden, status)
	status, _, _ = anyHost.hostRequest(t, http.MethodGet, "/health", "127.0.0.1:"+port, "Origin", "http://127.0.0.1:"+port)
	require.Equal(t, http.StatusOK, status, "the server's own origin")
}
