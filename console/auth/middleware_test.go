package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/auth"
)

// deny answers a refusal with its message and scope, as JSON.
func deny(c *gin.Context, err *auth.Error) {
	c.AbortWithStatusJSON(err.Status, gin.H{"detail": err.Msg, "scope": err.Scope})
}

func TestBearerAndRequire(t *testing.T) {
	t.Parallel()
	keys, err := auth.ParseKeys(aliceKey + "=agents:read@alice," + adminKey + "=admin")
	require.NoError(t, err)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/read", auth.Bearer(keys, deny), auth.Require(auth.ScopeAgentsRead, deny), func(c *gin.Context) {
		c.String(http.StatusOK, auth.Of(c).UserID("bob"))
	})
	r.GET("/run", auth.Bearer(keys, deny), auth.Require(auth.ScopeAgentsRun, deny), func(c *gin.Context) { c.String(http.StatusOK, "ran") })
	tests := []struct {
		name, path, header, value string
		status                    int
		body                      string
	}{
		{"no key", "/read", "", "", http.StatusUnauthorized, `{"detail":"missing API key: send Authorization: Bearer \u003ckey\u003e","scope":""}`},
		{"wrong key", "/read", "Authorization", "Bearer sk-nope-0123456789abcdef", http.StatusUnauthorized, `{"detail":"invalid API key","scope":""}`},
		{"bound key acts as its user", "/read", "Authorization", "bearer " + aliceKey, http.StatusOK, "alice"},
		{"X-API-Key", "/read", "X-API-Key", aliceKey, http.StatusOK, "alice"},
		{"unbound key acts as asked", "/read", "Authorization", "Bearer " + adminKey, http.StatusOK, "bob"},
		{"missing scope", "/run", "Authorization", "Bearer " + aliceKey, http.StatusForbidden, `{"detail":"this API key lacks the agents:run scope","scope":"agents:run"}`},
		{"admin has every scope", "/run", "Authorization", "Bearer " + adminKey, http.StatusOK, "ran"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, tt.path, nil)
			if tt.header != "" {
				req.Header.Set(tt.header, tt.value)
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code)
			require.Equal(t, tt.body, rec.Body.String())
			if tt.status == http.StatusUnauthorized {
				require.Equal(t, `Bearer realm="troupe"`, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestCookieSignsInOrCallsSignIn(t *testing.T) {
	t.Parallel()
	keys, err := auth.ParseKeys(aliceKey + "=agents:read@alice")
	require.NoError(t, err)
	r := gin.New()
	r.GET("/page", auth.Cookie(keys, func(c *gin.Context) { c.AbortWithStatus(http.StatusSeeOther) }), func(c *gin.Context) {
		c.String(http.StatusOK, auth.Of(c).Key().Name)
	})
	tests := []struct {
		name   string
		cookie string
		status int
	}{
		{"signed in", aliceKey, http.StatusOK},
		{"bad cookie", "sk-nope-0123456789abcdef", http.StatusSeeOther},
		{"no cookie", "", http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/page", nil)
			if tt.cookie != "" {
				req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: tt.cookie})
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code)
		})
	}
}
