package console_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console"
)

// trickle opens a connection that sends a request's headers at once and then
// its body a byte at a time, as slowly as a slowloris attack would. done is
// closed when the server closes the connection (or the trickle ends); the
// connection is closed at the test's end.
func trickle(t *testing.T, addr, path string, every time.Duration) (done <-chan struct{}) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	const size = 4096
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\nkey=", path, addr, size)
	require.NoError(t, err)
	closed := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { // the writer: one byte per tick until the server hangs up
		tick := time.NewTicker(every)
		defer tick.Stop()
		for range size - 4 {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
		}
	})
	wg.Go(func() { // the reader: whatever the server answers, until it closes
		defer close(closed)
		_, _ = bufio.NewReader(conn).WriteTo(discardWriter{})
	})
	t.Cleanup(func() { cancel(); conn.Close(); wg.Wait() })
	return closed
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// TestSlowBodiesAreCutOff: a client trickling a body (to the unauthenticated
// sign-in form, or to the API) loses its connection once the body timeout
// passes, so slow clients cannot pile up until /health stops answering;
// connections are capped; and streamed answers may last longer than the body
// timeout.
func TestSlowBodiesAreCutOff(t *testing.T) {
	t.Parallel()
	const bodyTimeout = 300 * time.Millisecond
	const maxConns = 8
	ts := startServer(t, withKeys(keys), withOptions(func(o *console.Options) {
		o.BodyTimeout, o.MaxConnections, o.HeaderTimeout, o.IdleTimeout = bodyTimeout, maxConns, 5*time.Second, 5*time.Second
	}))
	addr := strings.TrimPrefix(ts.url, "http://")
	health := func(timeout time.Duration) error {
		client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get(ts.url + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}

	// Each trickling client is cut off after the body timeout, long before
	// its body would have arrived (4 KB at a byte per 50 ms: over 3 minutes).
	for _, path := range []string{"/ui/login", "/agents/helpdesk/runs"} {
		start := time.Now()
		done := trickle(t, addr, path, 50*time.Millisecond)
		select {
		case <-done:
			require.Less(t, time.Since(start), bodyTimeout+2*time.Second, path)
		case <-time.After(bodyTimeout + 5*time.Second):
			t.Fatalf("%s: a trickling body held its connection past the body timeout", path)
		}
	}

	// Below the cap, /health answers at once while slow clients trickle.
	for range maxConns - 2 {
		trickle(t, addr, "/ui/login", 50*time.Millisecond)
	}
	require.NoError(t, health(time.Second))

	// Above it, it answers as soon as the body timeout frees a slot.
	for range 3 * maxConns {
		trickle(t, addr, "/ui/login", 50*time.Millisecond)
	}
	require.NoError(t, health(bodyTimeout+3*time.Second))

	// The cap holds: with every slot taken by connections that send
	// nothing, another connection waits.
	idle := make([]net.Conn, 0, maxConns)
	for len(idle) < maxConns {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		idle = append(idle, c)
		defer c.Close()
	}
	time.Sleep(bodyTimeout + time.Second) // the trickles above are cut; the idle ones fill the slots
	require.Error(t, health(300*time.Millisecond), "a connection over the cap waits")
	for _, c := range idle {
		c.Close()
	}
	require.NoError(t, health(2*time.Second))
}

// TestStreamOutlastsBodyTimeout: the body timeout bounds reading the body,
// not the answer: a run streaming for longer is not cut off.
func TestStreamOutlastsBodyTimeout(t *testing.T) {
	t.Parallel()
	const bodyTimeout = 200 * time.Millisecond
	ts := startServer(t, withOptions(func(o *console.Options) { o.BodyTimeout = bodyTimeout }))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/agents/writer/runs", strings.NewReader(`{"message":"please block"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	runID := resp.Header.Get("X-Run-Id")
	time.Sleep(5 * bodyTimeout)
	ts.json(http.MethodPost, "/agents/writer/runs/"+runID+"/cancel", "", "", http.StatusOK, nil) // still running
	frames := readFrames(t, resp.Body)
	require.Equal(t, "RunCancelled", frames[len(frames)-1].Event)
}

// TestEventStreamOutlastsBodyTimeout: a stream answering a request without
// a body (the console's live events) is not cut by the body timeout either.
func TestEventStreamOutlastsBodyTimeout(t *testing.T) {
	t.Parallel()
	const bodyTimeout = 200 * time.Millisecond
	ts := startServer(t, withOptions(func(o *console.Options) { o.BodyTimeout = bodyTimeout }))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.url+"/ui/events", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	require.True(t, lines.Scan())
	require.Equal(t, "event: ready", lines.Text())
	time.Sleep(5 * bodyTimeout)
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "more.yaml"), []byte("kind: Agent\nname: more\nmodel: echo\n"), 0o644))
	ts.json(http.MethodPost, "/config/reload", "", "", http.StatusOK, nil)
	for lines.Scan() {
		if lines.Text() == "event: reload" {
			return
		}
	}
	t.Fatalf("the event stream ended before the reload event: %v", lines.Err())
}
