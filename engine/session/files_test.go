package session_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

// memFiles is a files.Store in memory whose Put fails once failAt files
// were put (0: never).
type memFiles struct {
	mu     sync.Mutex
	data   map[string][]byte
	puts   int
	failAt int
}

func (m *memFiles) Put(_ context.Context, key string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	if m.failAt > 0 && m.puts > m.failAt {
		return errors.New("disk full")
	}
	m.data[key] = data
	return nil
}

func (m *memFiles) Get(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("unused")
}

func (m *memFiles) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, key)
	return nil
}

func (m *memFiles) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.data))
}

// TestStartStoresFilesAfterValidating: a run's files are stored when the
// run is, under the keys its records name; a run refused before it is
// stored puts no bytes, and one refused by the store, or whose files cannot
// all be put, leaves none behind.
func TestStartStoresFilesAfterValidating(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	fs := &memFiles{data: map[string][]byte{}}
	tg := &targets{runners: map[string]agent.Runner{}}
	tg.runners["greeter"] = newAgent(t, "greeter", fake.New(fake.Step{Content: "one"}, fake.Step{Content: "two"}), 0)
	svc := session.New(session.Options{Targets: tg, Store: st, Files: fs})
	checked, err := files.Check([]files.Upload{{Name: "a.txt", Data: []byte("alpha")}, {Name: "b.txt", Data: []byte("bravo")}}, files.Limits{})
	require.NoError(t, err)
	params := func(p session.Params) session.Params {
		p.Kind, p.Message, p.Files = spec.KindAgent, "hi", slices.Clone(checked)
		if p.Name == "" {
			p.Name = "greeter"
		}
		return p
	}

	turn, err := svc.Start(t.Context(), params(session.Params{UserID: "ann"}))
	require.NoError(t, err)
	turn.Execute(t.Context(), func(event.Event) {})
	runs := st.all()
	require.Len(t, runs, 1)
	var keys []string
	for _, f := range runs[0].Files {
		require.Equal(t, fs.data[f.Key], map[string][]byte{"a.txt": []byte("alpha"), "b.txt": []byte("bravo")}[f.Name])
		keys = append(keys, f.Key)
	}
	slices.Sort(keys)
	require.Equal(t, keys, fs.keys())

	// Refused before it is stored: nothing put.
	_, err = svc.Start(t.Context(), params(session.Params{Name: "nobody"}))
	require.ErrorIs(t, err, session.ErrNotFound)
	require.Equal(t, 2, fs.puts)
	// Refused by the store (another user's session): put, then deleted.
	_, err = svc.Start(t.Context(), params(session.Params{UserID: "bob", BoundUser: true, SessionID: turn.SessionID()}))
	require.ErrorIs(t, err, session.ErrSessionNotFound)
	require.Equal(t, keys, fs.keys())
	// The second file cannot be put: the first is deleted, no run stored.
	fs.failAt = fs.puts + 1
	_, err = svc.Start(t.Context(), params(session.Params{UserID: "ann"}))
	require.ErrorContains(t, err, `storing "b.txt": disk full`)
	require.Equal(t, keys, fs.keys())
	require.Len(t, st.all(), 1)

	// A server without a store for files refuses them.
	bare := session.New(session.Options{Targets: tg, Store: st})
	_, err = bare.Start(t.Context(), params(session.Params{UserID: "ann"}))
	require.ErrorIs(t, err, session.ErrInvalid)
	require.Len(t, st.all(), 1)
}
