package memory_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/memory"
)

// BenchmarkRecall recalls the top 5 of 1000 memories of one user (the
// default bound), among 2000 in all, on SQLite with the embedded store and
// the local embedder: the query's embedding, the hybrid search and the SQL
// re-check.
func BenchmarkRecall(b *testing.B) {
	e := newEnv(b, memory.Options{})
	subjects := []string{"sister", "manager", "neighbour", "dentist", "landlord", "coach", "friend Sam", "cousin", "accountant", "vet"}
	things := []string{"prefers tea over coffee", "lives in Porto", "has a birthday in June", "is allergic to shellfish", "plays chess on Sundays",
		"drives an old Volvo", "is learning Japanese", "works in logistics", "has twin boys", "runs a bakery"}
	ms := make([]memory.Memory, 0, 2000)
	for i := range 2000 {
		user := "bench"
		if i%2 == 1 {
			user = "other"
		}
		ms = append(ms, memory.Memory{ID: fmt.Sprintf("m%05d", i), UserID: user,
			Memory:    fmt.Sprintf("Their %s %s (note %d)", subjects[i%len(subjects)], things[(i/len(subjects))%len(things)], i),
			Topics:    []string{"people"},
			CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()})
		require.NoError(b, e.db.CreateMemory(b.Context(), &ms[i]))
	}
	n, err := e.svc.Reindex(b.Context())
	require.NoError(b, err)
	require.Equal(b, 2000, n)
	queries := []string{"does the dentist like coffee", "who is learning Japanese", "where does the landlord live", "any shellfish allergy"}
	b.ResetTimer()
	for i := range b.N {
		got, err := e.svc.Recall(b.Context(), "bench", "", queries[i%len(queries)], 5)
		if err != nil || len(got) != 5 {
			b.Fatal(err, len(got))
		}
	}
}
