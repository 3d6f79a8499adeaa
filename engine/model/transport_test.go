package model_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/troupehq/troupe/engine/model"
)

// TestHTTPClientKeepsConnections checks that a burst of concurrent calls to
// one vendor leaves its connections open for the next burst: Go's default of
// two idle connections per host would close and redial most of them.
func TestHTTPClientKeepsConnections(t *testing.T) {
	var dials atomic.Int64
	var release atomic.Pointer[chan struct{}]
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-*release.Load() // hold every call open until all have arrived: one connection each
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	const burst = 16
	client := model.HTTPClient()
	for round := range 3 {
		arrived.Add(burst)
		gate := make(chan struct{})
		release.Store(&gate)
		var wg sync.WaitGroup
		for range burst {
			wg.Go(func() {
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		arrived.Wait()
		close(gate)
		wg.Wait()
		if got := dials.Load(); got != burst {
			t.Fatalf("after round %d: %d connections opened, want %d (the first round's, reused)", round+1, got, burst)
		}
	}
}
