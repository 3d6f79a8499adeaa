package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/store"
)

// testRunFiles: a run's files are stored with it, listed and read only by
// the session's user, and go with the session.
func testRunFiles(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	files := []store.RunFile{
		{ID: "fz", Name: "cat.png", MediaType: "image/png", Size: 3, SHA256: "aa", Key: "ab/abcdef012345"},
		{ID: "fa", Name: "notes.md", MediaType: "text/markdown", Size: 5, SHA256: "bb", Key: "cd/cdef01234567"},
	}
	s := agentSession("s", "alice", "a")
	r := &store.Run{ID: "r1", Input: "look", CreatedAt: at(1), Files: files}
	require.NoError(t, db.StartRun(ctx, s, r))
	other := agentSession("s2", "bob", "a")
	require.NoError(t, db.StartRun(ctx, other, &store.Run{ID: "r2", Input: "hi", CreatedAt: at(2),
		Files: []store.RunFile{{ID: "f3", Name: "b.txt", MediaType: "text/plain", Size: 1, SHA256: "cc", Key: "ef/ef0123456789"}}}))

	want := make([]store.RunFile, len(files))
	for i, f := range files {
		f.RunID, f.SessionID, f.CreatedAt = "r1", "s", at(1)
		want[i] = f
	}
	tests := []struct {
		name string
		user string
		want []store.RunFile
	}{
		{"owner", "alice", want},
		{"admin", "", want},
		{"another user", "bob", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.SessionFiles(ctx, "s", store.Filter{UserID: tt.user})
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			f, err := db.GetRunFile(ctx, "s", "fa", store.Filter{UserID: tt.user})
			if tt.want == nil {
				require.ErrorIs(t, err, store.ErrNotFound)
				return
			}
			require.NoError(t, err)
			require.Equal(t, want[1], *f)
		})
	}
	// A file is addressed through its own session only.
	_, err := db.GetRunFile(ctx, "s2", "fz", store.Filter{})
	require.ErrorIs(t, err, store.ErrNotFound)

	keys, err := db.SessionFileKeys(ctx, []string{"s", "s2"}, store.Filter{UserID: "alice"})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"ab/abcdef012345", "cd/cdef01234567"}, keys)
	deleted, err := db.DeleteSessions(ctx, []string{"s"}, store.Filter{UserID: "alice"})
	require.NoError(t, err)
	require.Equal(t, []string{"s"}, deleted)
	got, err := db.SessionFiles(ctx, "s", store.Filter{})
	require.NoError(t, err)
	require.Empty(t, got)
	keys, err = db.SessionFileKeys(ctx, []string{"s", "s2"}, store.Filter{})
	require.NoError(t, err)
	require.Equal(t, []string{"ef/ef0123456789"}, keys)

	// Files that cannot be stored (an id taken) leave no run and no new
	// session behind: the run and its files are one transaction.
	err = db.StartRun(ctx, agentSession("s3", "carol", "a"), &store.Run{ID: "r3", Input: "hi", CreatedAt: at(3),
		Files: []store.RunFile{{ID: "f4", Name: "a.txt", MediaType: "text/plain", Size: 1, SHA256: "dd", Key: "k4"}, {ID: "f3", Name: "dup.txt", MediaType: "text/plain", Size: 1, SHA256: "ee", Key: "k5"}}})
	require.Error(t, err)
	_, err = db.GetRun(ctx, "r3", store.Filter{})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = db.GetSession(ctx, "s3", store.Filter{})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = db.GetRunFile(ctx, "s3", "f4", store.Filter{})
	require.ErrorIs(t, err, store.ErrNotFound)
	// Into another user's session, nothing is stored, files included.
	err = db.StartRun(ctx, agentSession("s2", "mallory", "a"), &store.Run{ID: "r4", Input: "hi", CreatedAt: at(4),
		Files: []store.RunFile{{ID: "f5", Name: "a.txt", MediaType: "text/plain", Size: 1, SHA256: "ff", Key: "k6"}}})
	require.ErrorIs(t, err, store.ErrNotFound)
	keys, err = db.SessionFileKeys(ctx, []string{"s2"}, store.Filter{})
	require.NoError(t, err)
	require.Equal(t, []string{"ef/ef0123456789"}, keys)
}
