package console_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
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
