package console_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	aliceKey  = "sk-alice-0123456789abcdef"
	bobKey    = "sk-bob-0123456789abcdefgh"
	readerKey = "sk-reader-0123456789abcdef"
	adminKey  = "sk-admin-0123456789abcdef"
)

var keys = strings.Join([]string{
	aliceKey + "=agents:read+agents:run+sessions:read+sessions:write@alice",
	bobKey + "=agents:read+agents:run+sessions:read+sessions:write@bob",
	readerKey + "=agents:read",
	adminKey + "=admin",
}, ",")

func TestAuthScopes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	ts.json(http.MethodGet, "/health", "", "", http.StatusOK, nil)
	for _, route := range []struct{ method, path string }{
		{"GET", "/agents"}, {"GET", "/config"}, {"GET", "/sessions"}, {"POST", "/agents/calc/runs"},
		{"GET", "/v1/models"}, {"POST", "/v1/chat/completions"}, {"GET", "/openapi.json"}, {"POST", "/config/reload"},
	} {
		status, body, hdr := ts.do(route.method, route.path, "", "", "")
		require.Equal(t, http.StatusUnauthorized, status, route)
		require.Contains(t, body, "missing API key")
		require.Equal(t, `Bearer realm="troupe"`, hdr.Get("WWW-Authenticate"))
		status, body, _ = ts.do(route.method, route.path, "sk-wrong-0123456789abcdef", "", "")
		require.Equal(t, http.StatusUnauthorized, status, route)
		require.Contains(t, body, "invalid API key")
	}
	ts.json(http.MethodGet, "/agents", readerKey, "", http.StatusOK, nil)
	var e map[string]any
	ts.json(http.MethodPost, "/agents/calc/runs", readerKey, `{"message":"hi"}`, http.StatusForbidden, &e)
	require.Equal(t, "this API key lacks the agents:run scope", e["detail"])
	ts.json(http.MethodGet, "/sessions", readerKey, "", http.StatusForbidden, nil)
	ts.json(http.MethodPost, "/config/reload", aliceKey, "", http.StatusForbidden, nil)
	ts.json(http.MethodPost, "/config/reload", adminKey, "", http.StatusOK, nil)

	// CORS preflight is answered before authentication.
	req, _ := http.NewRequest(http.MethodOptions, ts.url+"/agents/calc/runs", nil)
	req.Header.Set("Origin", "http://localhost:3000")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "http://localhost:3000", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

// TestUserIsolation proves a key bound to one user can never read, list,
// rename, delete or continue another user's sessions, on every route.
func TestUserIsolation(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	var run runJSON
	// Alice asks to act as bob: her key's user wins.
	ts.json(http.MethodPost, "/agents/writer/runs", aliceKey, `{"message":"alice secret","stream":false,"user_id":"bob"}`, http.StatusOK, &run)
	alice := run.SessionID
	ts.json(http.MethodPost, "/agents/writer/runs", bobKey, `{"message":"bob note","stream":false}`, http.StatusOK, &run)
	bob := run.SessionID

	var page sessionPage
	ts.json(http.MethodGet, "/sessions", bobKey, "", http.StatusOK, &page)
	require.Len(t, page.Data, 1)
	require.Equal(t, bob, page.Data[0].SessionID)
	ts.json(http.MethodGet, "/sessions?user_id=alice", bobKey, "", http.StatusOK, &page)
	require.Len(t, page.Data, 1, "a bound key cannot widen its view with user_id")
	require.Equal(t, bob, page.Data[0].SessionID)

	ts.json(http.MethodGet, "/sessions/"+alice, bobKey, "", http.StatusNotFound, nil)
	ts.json(http.MethodGet, "/sessions/"+alice+"/runs", bobKey, "", http.StatusNotFound, nil)
	ts.json(http.MethodPost, "/sessions/"+alice+"/rename", bobKey, `{"session_name":"pwned"}`, http.StatusNotFound, nil)
	ts.json(http.MethodDelete, "/sessions/"+alice, bobKey, "", http.StatusNotFound, nil)
	ts.json(http.MethodDelete, "/sessions", bobKey, `{"session_ids":["`+alice+`"]}`, http.StatusNotFound, nil)
	ts.json(http.MethodPost, "/agents/writer/runs", bobKey, `{"message":"continue","session_id":"`+alice+`","stream":false}`, http.StatusNotFound, nil)
	status, body, _ := ts.do(http.MethodPost, "/v1/chat/completions", bobKey, "application/json", `{"model":"writer","messages":[{"role":"user","content":"x"}]}`)
	require.Equal(t, http.StatusOK, status, body)
	// Listing an agent's runs shows only the caller's, whatever it asks for.
	var listed []runJSON
	for _, path := range []string{"/agents/writer/runs?session_id=" + alice, "/agents/writer/runs?session_id=" + alice + "&user_id=alice"} {
		ts.json(http.MethodGet, path, bobKey, "", http.StatusOK, &listed)
		require.Empty(t, listed, path)
	}
	ts.json(http.MethodGet, "/agents/writer/runs?user_id=alice", bobKey, "", http.StatusOK, &listed)
	require.NotEmpty(t, listed)
	for _, r := range listed {
		require.NotEqual(t, alice, r.SessionID)
		require.NotEqual(t, "alice secret", r.RunInput)
	}

	// Alice's session is intact and hers.
	var s sessionJSON
	ts.json(http.MethodGet, "/sessions/"+alice, aliceKey, "", http.StatusOK, &s)
	require.Equal(t, "alice secret", s.SessionName)
	require.Equal(t, "alice", s.UserID)
	var runs []runJSON
	ts.json(http.MethodGet, "/sessions/"+alice+"/runs", aliceKey, "", http.StatusOK, &runs)
	require.Len(t, runs, 1)
	ts.json(http.MethodGet, "/agents/writer/runs", aliceKey, "", http.StatusOK, &listed)
	require.Len(t, listed, 1)
	require.Equal(t, runs[0].RunID, listed[0].RunID)

	// The admin sees everyone's sessions and may filter by user.
	ts.json(http.MethodGet, "/sessions", adminKey, "", http.StatusOK, &page)
	require.Equal(t, 3, page.Meta.TotalCount)
	ts.json(http.MethodGet, "/sessions?user_id=alice", adminKey, "", http.StatusOK, &page)
	require.Len(t, page.Data, 1)
	ts.json(http.MethodGet, "/agents/writer/runs?user_id=alice", adminKey, "", http.StatusOK, &listed)
	require.Len(t, listed, 1)
	require.Equal(t, alice, listed[0].SessionID)
	ts.json(http.MethodDelete, "/sessions/"+alice, adminKey, "", http.StatusNoContent, nil)
}
