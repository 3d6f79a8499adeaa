package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/store"
)

// testEditorAudit: the spec editor's writes come back newest first, every
// field as written, bounded by the limit.
func testEditorAudit(t *testing.T, open Opener) {
	db := open(t)
	ctx := t.Context()
	got, err := db.EditorAudits(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, got)
	require.NotNil(t, got)

	writes := []store.EditorAudit{
		{At: base, Actor: "ops", Action: "create", Path: "hello.yaml", HashAfter: "a1", TraceID: "t1"},
		{At: base.Add(time.Second), Actor: "ops", UserID: "alice", Action: "update", Path: "hello.yaml", HashBefore: "a1", HashAfter: "b2", TraceID: "t2"},
		{At: base.Add(2 * time.Second), Actor: "root", Action: "rename", Path: "teams/hi.yaml", FromPath: "hello.yaml", HashBefore: "b2", HashAfter: "b2"},
		{At: base.Add(3 * time.Second), Actor: "root", Action: "delete", Path: "teams/hi.yaml", HashBefore: "b2"},
	}
	var ids []int64
	for _, w := range writes {
		id, err := db.AddEditorAudit(ctx, w)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.Len(t, ids, 4)

	got, err = db.EditorAudits(ctx, 3)
	require.NoError(t, err)
	var want []store.EditorAudit
	for i := 3; i >= 1; i-- {
		w := writes[i]
		w.ID = ids[i]
		w.At = w.At.Truncate(time.Microsecond)
		want = append(want, w)
	}
	require.Equal(t, want, got)

	// A write without a time is stamped now.
	_, err = db.AddEditorAudit(ctx, store.EditorAudit{Actor: "ops", Action: "update", Path: "x.yaml"})
	require.NoError(t, err)
	got, err = db.EditorAudits(ctx, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "x.yaml", got[0].Path)
	require.WithinDuration(t, time.Now(), got[0].At, time.Minute)
}
