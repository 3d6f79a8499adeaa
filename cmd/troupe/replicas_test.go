package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the tests read the shared database back
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/troupehq/troupe/engine/knowledge/chunk"
	"github.com/troupehq/troupe/engine/knowledge/reader"
)

// These tests run real `troupe serve` processes and kill them with SIGKILL,
// the way a crash, an OOM kill or a node loss ends a replica. The processes
// are this test binary re-executed: TestMain calls main when execMainEnv is
// set, so there is no separate build and the child is exactly the code under
// test (with -race when the tests have it).

// execMainEnv makes the test binary run main instead of the tests.
const execMainEnv = "TROUPE_TEST_EXEC_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// replica is one `troupe serve` process.
type replica struct {
	name string
	url  string // http://127.0.0.1:port
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// replicaConfig is what a replica is started with.
type replicaConfig struct {
	name  string   // its --replica-id and the X-Replica header of its model calls
	db    string   // --db
	model string   // the fake model's base URL
	dir   string   // its spec folder; written when empty
	addr  string   // its listen address; a free port when empty
	extra []string // more flags
	// defaultID leaves --replica-id to its default.
	defaultID bool
}

// replicaSpecs is the spec folder of every replica: one agent on the fake
// OpenAI-compatible model, which learns from a header which replica calls it,
// and one knowledge base with the local embedder.
const replicaSpecs = `kind: Model
name: fake
provider: openai
model: fake-1
base_url: %s
api_key: sk-test
retries: 0
headers:
  X-Replica: %s
---
kind: Agent
name: worker
description: Answers with the fake model.
model: fake
instructions: Answer.
---
kind: Knowledge
name: docs
description: Uploaded documents.
chunking: {strategy: recursive, size: 120, overlap: 20}
embedder: local
store: embedded
`

// startReplica starts `troupe serve` on a free loopback port and returns
// once its readiness probe answers 200. Its output goes to a file printed
// if the test fails; the test's end kills it.
func startReplica(t *testing.T, c replicaConfig) (*replica, replicaConfig) {
	t.Helper()
	if c.dir == "" {
		c.dir = t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(c.dir, "specs.yaml"), fmt.Appendf(nil, replicaSpecs, c.model, c.name), 0o644))
	}
	addr := c.addr
	if addr == "" {
		addr = freeAddr(t)
	}
	logPath := filepath.Join(t.TempDir(), c.name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	args := []string{"serve", "--dir", c.dir, "--addr", addr, "--db", c.db, "--traces", "off", "--log-level", "info"}
	if !c.defaultID {
		args = append(args, "--replica-id", c.name)
	}
	args = append(args, c.extra...)
	cmd := exec.Command(os.Args[0], args...)
	// Only what the test sets: a developer's TROUPE_* or provider keys must
	// not change the servers under test.
	cmd.Env = []string{execMainEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir()}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	r := &replica{name: c.name, url: "http://" + addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(r.done) }()
	t.Cleanup(func() {
		r.kill(t)
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("replica %s (%s) output:\n%s", c.name, strings.Join(args, " "), out)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-r.done:
			out, _ := os.ReadFile(logPath)
			t.Fatalf("replica %s exited before it was ready:\n%s", c.name, out)
		default:
		}
		if status, _ := r.get(t, "/health/ready", nil); status == http.StatusOK {
			c.addr = addr
			return r, c
		}
		require.True(t, time.Now().Before(deadline), "replica %s not ready within 30s", c.name)
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL: no drain, no cleanup, as in a crash.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Kill()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Errorf("replica %s did not exit after SIGKILL", r.name)
	}
}

// freeAddr returns a loopback address no listener holds right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// httpClient bounds every call the tests make but the streams.
var httpClient = &http.Client{Timeout: 20 * time.Second}

// do sends a request with a JSON (or other, per contentType) body and decodes
// a JSON answer into out when out is not nil. It returns the status, 0 when
// the server could not be reached.
func (r *replica) do(t *testing.T, method, path, contentType, body string, out any) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, r.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil
	}
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(data, out), "%s %s: %s", method, path, data)
	}
	return resp.StatusCode, resp.Header
}

func (r *replica) get(t *testing.T, path string, out any) (int, http.Header) {
	t.Helper()
	return r.do(t, http.MethodGet, path, "", "", out)
}

// runState is the part of GET /agents/{id}/runs/{run_id} the tests read.
type runState struct {
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id"`
	Status    string `json:"status"`
	Content   string `json:"content"`
	Error     string `json:"error"`
}

// submit queues a background run of the worker agent and returns its id.
func (r *replica) submit(t *testing.T, message string) (string, error) {
	body, err := json.Marshal(map[string]any{"message": message, "background": true})
	require.NoError(t, err)
	var out runState
	status, _ := r.do(t, http.MethodPost, "/agents/worker/runs", "application/json", string(body), &out)
	if status != http.StatusAccepted {
		return "", fmt.Errorf("submitting %q to %s: status %d", message, r.name, status)
	}
	if out.Status != "PENDING" || out.RunID == "" {
		return "", fmt.Errorf("submitting %q to %s: answered %+v", message, r.name, out)
	}
	return out.RunID, nil
}

// document is an uploaded document the tests follow.
type document struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	Status  string `json:"status"`
	Chunks  int    `json:"chunks"`
	content string
}

// upload adds text to the docs knowledge base through r.
func (r *replica) upload(t *testing.T, name, text string) (document, error) {
	form := url.Values{"text_content": {text}, "name": {name}}
	var d document
	status, _ := r.do(t, http.MethodPost, "/knowledge/content?knowledge_id=docs", "application/x-www-form-urlencoded", form.Encode(), &d)
	if status != http.StatusAccepted {
		return d, fmt.Errorf("uploading %s to %s: status %d", name, r.name, status)
	}
	d.content = text
	return d, nil
}

// finds reports whether a keyword search on r returns a chunk containing word.
func (r *replica) finds(t *testing.T, query, word string) bool {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "knowledge_id": "docs", "search_type": "keyword", "max_results": 5})
	require.NoError(t, err)
	var res struct {
		Data []struct {
			Content string `json:"content"`
		} `json:"data"`
	}
	if status, _ := r.do(t, http.MethodPost, "/knowledge/search", "application/json", string(body), &res); status != http.StatusOK {
		return false
	}
	return slices.ContainsFunc(res.Data, func(h struct {
		Content string `json:"content"`
	}) bool {
		return strings.Contains(h.Content, word)
	})
}

// frame is one event of a run's SSE stream.
type frame struct {
	ID    int
	Event string
}

// stream is a run's event stream being read.
type stream struct {
	resp  *http.Response
	sc    *bufio.Scanner
	runID string
}

// openStream sends a request answered with a run's event stream.
func (r *replica) openStream(t *testing.T, method, path, body string) *stream {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, r.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &stream{resp: resp, sc: sc, runID: resp.Header.Get("X-Run-Id")}
}

// next returns the next event, false at the end of the stream (or when the
// connection broke).
func (s *stream) next(t *testing.T) (frame, bool) {
	t.Helper()
	f := frame{ID: -1}
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			n, err := strconv.Atoi(strings.TrimPrefix(line, "id: "))
			require.NoError(t, err)
			f.ID = n
		case strings.HasPrefix(line, "event: "):
			f.Event = strings.TrimPrefix(line, "event: ")
		case line == "" && f.Event != "":
			require.GreaterOrEqual(t, f.ID, 0, "every run event has an index")
			return f, true
		}
	}
	return frame{}, false
}

// until reads events up to and including the first for which stop is true.
func (s *stream) until(t *testing.T, stop func(frame) bool) []frame {
	t.Helper()
	var out []frame
	for {
		f, ok := s.next(t)
		require.True(t, ok, "the stream ended after %v", out)
		out = append(out, f)
		if stop(f) {
			return out
		}
	}
}

// rest reads events until the stream ends.
func (s *stream) rest(t *testing.T) []frame {
	t.Helper()
	var out []frame
	for {
		f, ok := s.next(t)
		if !ok {
			return out
		}
		out = append(out, f)
	}
}

func terminal(f frame) bool {
	return f.Event == "RunCompleted" || f.Event == "RunError" || f.Event == "RunCancelled"
}

// fakeModel is an OpenAI-compatible chat completions server on loopback. It
// answers each request in several streamed chunks with a delay between them,
// counts the requests per run by the marker in the run's message ("[run:X]")
// and per replica (the X-Replica header), and holds the answers of gated
// markers after their first chunks until the gate opens.
type fakeModel struct {
	srv    *httptest.Server
	chunks int
	delay  time.Duration

	mu       sync.Mutex
	calls    map[string][]string // marker → the replica of each request
	inFlight map[string]int      // replica → requests being answered
	gates    map[string]chan struct{}
}

var markerRE = regexp.MustCompile(`\[run:([^\]]+)\]`)

func newFakeModel(t *testing.T, chunks int, delay time.Duration) *fakeModel {
	f := &fakeModel{chunks: chunks, delay: delay, calls: map[string][]string{}, inFlight: map[string]int{}, gates: map[string]chan struct{}{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// gate makes the answer for marker stop after gatedChunks chunks until open
// is called.
func (f *fakeModel) gate(marker string) (open func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	f.gates[marker] = ch
	return sync.OnceFunc(func() { close(ch) })
}

// gatedChunks is how many chunks a gated answer streams before it waits.
const gatedChunks = 3

// answer is the whole content the fake model answers for marker.
func (f *fakeModel) answer(marker string) string {
	var b strings.Builder
	for i := range f.chunks {
		fmt.Fprintf(&b, "%s-part%d ", marker, i)
	}
	return strings.TrimSpace(b.String())
}

func (f *fakeModel) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Messages []struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"messages"`
		Stream bool `json:"stream"`
	}
	if r.URL.Path != "/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, "not a chat completion request", http.StatusBadRequest)
		return
	}
	marker := "none"
	for _, m := range req.Messages {
		if m.Role == "user" && m.Content != nil {
			if sm := markerRE.FindStringSubmatch(*m.Content); sm != nil {
				marker = sm[1]
			}
		}
	}
	replica := r.Header.Get("X-Replica")
	f.mu.Lock()
	f.calls[marker] = append(f.calls[marker], replica)
	f.inFlight[replica]++
	gate := f.gates[marker]
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inFlight[replica]--; f.mu.Unlock() }()

	wait := func(d time.Duration, gate chan struct{}) bool {
		select {
		case <-gate:
		case <-r.Context().Done():
			return false
		}
		select {
		case <-time.After(d):
			return true
		case <-r.Context().Done():
			return false
		}
	}
	opened := make(chan struct{})
	close(opened)
	if !req.Stream {
		// As long as the streamed answer takes, so that runs are in flight.
		if gate == nil {
			gate = opened
		}
		if !wait(time.Duration(f.chunks)*f.delay, gate) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "c", "object": "chat.completion", "model": "fake-1",
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": f.answer(marker)}, "finish_reason": "stop"}}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(delta map[string]any, finish any) bool {
		data, _ := json.Marshal(map[string]any{"id": "c", "object": "chat.completion.chunk", "model": "fake-1",
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return false
		}
		w.(http.Flusher).Flush()
		return true
	}
	parts := strings.SplitAfter(f.answer(marker), " ")
	for i, p := range parts {
		g := opened
		if i == gatedChunks && gate != nil {
			g = gate
		}
		if !wait(f.delay, g) {
			return
		}
		if !send(map[string]any{"content": p}, nil) {
			return
		}
	}
	send(map[string]any{}, "stop")
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

// seen returns the replicas of the requests for marker.
func (f *fakeModel) seen(marker string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls[marker])
}

// counts returns the number of requests per marker and the requests being
// answered per replica.
func (f *fakeModel) counts() (map[string]int, map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls := map[string]int{}
	for m, rs := range f.calls {
		calls[m] = len(rs)
	}
	inFlight := map[string]int{}
	for r, n := range f.inFlight {
		inFlight[r] = n
	}
	return calls, inFlight
}

// pgDatabase returns the DSN of a fresh schema of the test PostgreSQL
// database, dropped at the test's end, and a connection to it; it skips the
// test when TROUPE_TEST_POSTGRES_DSN is not set.
func pgDatabase(t *testing.T) (string, *sql.DB) {
	t.Helper()
	dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("TROUPE_TEST_POSTGRES_DSN not set: the two-replica kill test needs a PostgreSQL database both replicas share")
	}
	admin, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	schema := "troupe_replicas_" + strings.ToLower(rand.Text()[:12])
	_, err = admin.ExecContext(t.Context(), `CREATE SCHEMA "`+schema+`"`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.ExecContext(context.Background(), `DROP SCHEMA "`+schema+`" CASCADE`)
		_ = admin.Close()
	})
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return u.String(), db
}

// docText is the content of the i-th uploaded document: several paragraphs,
// so that it makes several chunks.
func docText(i int) string {
	var b strings.Builder
	for p := range 6 {
		fmt.Fprintf(&b, "Document %d, paragraph %d. ", i, p)
		for s := range 5 {
			fmt.Fprintf(&b, "Sentence %d of paragraph %d in document %d talks about topic%d%d and the weather in city%d. ", s, p, i, i, p, (i+s)%7)
		}
		b.WriteString("\n\n")
	}
	return b.String()
}

// wantChunks is the number of chunks the docs knowledge base makes of d:
// its reader and chunker run on the same content with the same settings.
func wantChunks(t *testing.T, d document) int {
	t.Helper()
	sections, err := reader.Read(d.Type, d.Name, []byte(d.content))
	require.NoError(t, err)
	pieces, err := chunk.Split(sections, chunk.Options{Strategy: chunk.Recursive, Size: 120, Overlap: 20})
	require.NoError(t, err)
	return len(pieces)
}

// Timing knobs of the kill tests: short leases, so that what a dead replica
// left behind is recovered within seconds instead of the defaults' 15s
// (replicas) and one hour (jobs).
const (
	testReplicaLease = 3 * time.Second
	testJobLease     = 5 * time.Second
)

// TestTwoReplicasSurviveKill is the two-replica bar of issue 15: two `troupe
// serve` processes on one PostgreSQL database take 200 background runs and
// 50 uploads spread over both, and one is killed with SIGKILL midway. Every
// run ends in exactly one terminal state (COMPLETED, or ERROR with a reason
// for the runs the dead replica was executing), none executed twice (counted
// at the fake model) and none left RUNNING or PENDING; every document is
// ingested exactly once with its exact chunk count; a stream opened on the
// killed replica for a run executing on the survivor resumes on the
// survivor with every remaining event once, in order; a cancel sent to the
// replica not executing a run ends it; a search on either replica finds a
// document uploaded through the other within 5s.
func TestTwoReplicasSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	t.Parallel()
	start := time.Now()
	dsn, db := pgDatabase(t)
	fm := newFakeModel(t, 8, 40*time.Millisecond)
	flags := []string{"--replica-lease", testReplicaLease.String(), "--job-lease", testJobLease.String(), "--max-background-runs", "4", "--shutdown-timeout", "2s"}
	// A starts first, so it is most likely River's leader: its death then
	// also exercises B taking over leadership and rescuing A's jobs.
	a, _ := startReplica(t, replicaConfig{name: "a", db: dsn, model: fm.srv.URL, extra: flags})
	b, _ := startReplica(t, replicaConfig{name: "b", db: dsn, model: fm.srv.URL, extra: flags})
	t.Logf("two replicas ready in %s", time.Since(start).Round(time.Millisecond))

	// Search follows the other replica: each finds, within 5s of its
	// upload, a document uploaded through the other.
	var searchDocs []document
	for _, tc := range []struct {
		through, on *replica
		word        string
	}{{a, b, "quokkafestival"}, {b, a, "wombatparade"}} {
		uploaded := time.Now()
		d, err := tc.through.upload(t, tc.word+".txt", "The "+tc.word+" takes place on Rottnest Island every March.")
		require.NoError(t, err)
		searchDocs = append(searchDocs, d)
		require.Eventually(t, func() bool { return tc.on.finds(t, tc.word, tc.word) }, 5*time.Second, 50*time.Millisecond,
			"a document uploaded through %s is found on %s within 5s", tc.through.name, tc.on.name)
		t.Logf("uploaded through %s, found on %s after %s", tc.through.name, tc.on.name, time.Since(uploaded).Round(time.Millisecond))
	}

	// Cancel from the other replica: a run executing on A, cancelled
	// through B, ends CANCELLED within a second or two.
	open := fm.gate("cancel")
	t.Cleanup(open)
	live := a.openStream(t, http.MethodPost, "/agents/worker/runs", `{"message":"hold on [run:cancel]"}`)
	live.until(t, func(f frame) bool { return f.Event == "RunContent" })
	cancelled := time.Now()
	var cr struct {
		Status string `json:"status"`
	}
	status, _ := b.do(t, http.MethodPost, "/agents/worker/runs/"+live.runID+"/cancel", "", "", &cr)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "cancelling", cr.Status)
	fs := live.rest(t)
	require.Equal(t, "RunCancelled", fs[len(fs)-1].Event)
	took := time.Since(cancelled)
	require.Less(t, took, 2*time.Second, "a cancel through the other replica takes effect within a second or two")
	var rs runState
	status, _ = b.get(t, "/agents/worker/runs/"+live.runID, &rs)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "CANCELLED", rs.Status)
	t.Logf("a run on A cancelled through B in %s", took.Round(time.Millisecond))

	// Resume: a run executing on B, followed through A, whose model holds
	// its answer after a few chunks.
	openResume := fm.gate("resume")
	t.Cleanup(openResume)
	onB := b.openStream(t, http.MethodPost, "/agents/worker/runs", `{"message":"stream me [run:resume]"}`)
	var liveFrames []frame
	for n := 0; n < gatedChunks; {
		f, ok := onB.next(t)
		require.True(t, ok)
		liveFrames = append(liveFrames, f)
		if f.Event == "RunContent" {
			n++
		}
	}
	onA := a.openStream(t, http.MethodGet, "/agents/worker/runs/"+onB.runID+"/resume", "")
	var gotOnA []frame
	for range liveFrames {
		f, ok := onA.next(t)
		require.True(t, ok)
		gotOnA = append(gotOnA, f)
	}
	require.Equal(t, liveFrames, gotOnA, "A streams the run executing on B from its first event")

	// The load: 200 background runs and 50 uploads, alternating between
	// the replicas.
	const nRuns, nDocs = 200, 50
	runIDs := make([]string, nRuns)
	docs := make([]document, nDocs)
	replicas := []*replica{a, b}
	loaded := time.Now()
	var g errgroup.Group
	g.SetLimit(16)
	for i := range nRuns {
		g.Go(func() (err error) {
			runIDs[i], err = replicas[i%2].submit(t, fmt.Sprintf("job %d [run:bg%d]", i, i))
			return err
		})
		if i%4 == 0 && i/4 < nDocs {
			j := i / 4
			g.Go(func() (err error) {
				docs[j], err = replicas[j%2].upload(t, fmt.Sprintf("doc%d.txt", j), docText(j))
				return err
			})
		}
	}
	require.NoError(t, g.Wait())
	t.Logf("%d background runs and %d uploads accepted in %s", nRuns, nDocs, time.Since(loaded).Round(time.Millisecond))

	// Kill A while both replicas execute runs and runs still wait.
	var calls, inFlight map[string]int
	require.Eventually(t, func() bool {
		calls, inFlight = fm.counts()
		started := 0
		for i := range nRuns {
			started += calls[fmt.Sprintf("bg%d", i)]
		}
		return started >= 30 && inFlight["a"] > 0 && inFlight["b"] > 1
	}, 20*time.Second, 5*time.Millisecond, "both replicas execute background runs")
	started := 0
	for i := range nRuns {
		started += calls[fmt.Sprintf("bg%d", i)]
	}
	// Submitting takes a second or two; the 200 runs take about eight at
	// eight runs at once, so most still wait.
	require.LessOrEqual(t, started, nRuns-50, "runs still wait when A is killed; slow the fake model down if this fails")
	a.kill(t)
	killed := time.Now()
	t.Logf("killed A with %d runs started, %d executing on A and %d on B", started, inFlight["a"], inFlight["b"])

	// The stream opened on A broke with A; B resumes it from the last event
	// A delivered, once the model goes on.
	gotOnA = append(gotOnA, onA.rest(t)...)
	require.NotEmpty(t, gotOnA)
	require.False(t, terminal(gotOnA[len(gotOnA)-1]), "A died mid-stream")
	last := gotOnA[len(gotOnA)-1].ID
	openResume()
	resumed := b.openStream(t, http.MethodPost, "/agents/worker/runs/"+onB.runID+"/resume", fmt.Sprintf(`{"last_event_index": %d}`, last))
	gotOnB := resumed.rest(t)
	whole := append(liveFrames, onB.rest(t)...)
	require.Equal(t, "RunCompleted", whole[len(whole)-1].Event)
	for i := 1; i < len(whole); i++ {
		require.Greater(t, whole[i].ID, whole[i-1].ID, "the run's events are numbered in order")
	}
	require.Equal(t, whole[:len(gotOnA)], gotOnA, "A delivered a prefix of the run's events")
	var remaining []frame
	for _, f := range whole {
		if f.ID > last {
			remaining = append(remaining, f)
		}
	}
	require.NotEmpty(t, remaining)
	require.Equal(t, remaining, gotOnB, "B delivers every event after the last one A delivered, once, in order")
	require.Equal(t, []string{"b"}, fm.seen("resume"))

	// The runs A was executing end within its lease (and a sweep of B's)
	// of its last heartbeat.
	aRunning := func() bool {
		var n int
		require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(*) FROM runs WHERE status = 'RUNNING' AND replica_id = 'a'`).Scan(&n))
		return n == 0
	}
	if !waitFor(3*testReplicaLease+2*time.Second, aRunning) {
		t.Fatalf("runs of A still RUNNING %s after its death:\n%s", time.Since(killed), dbState(t, db))
	}
	t.Logf("A's running runs ended %s after the kill", time.Since(killed).Round(time.Millisecond))

	// The dust settles: every job of the database finished (the dead
	// replica's included, given back by River's rescuer on B) and every
	// run is terminal.
	settle := func() bool {
		var open int
		require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled')`).Scan(&open))
		if open > 0 {
			return false
		}
		var unfinished int
		require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(*) FROM runs WHERE status IN ('PENDING', 'RUNNING')`).Scan(&unfinished))
		return unfinished == 0
	}
	if !waitFor(45*time.Second, settle) {
		t.Fatalf("jobs and runs still open 45s after A's death:\n%s", dbState(t, db))
	}
	t.Logf("every job and run ended %s after the kill", time.Since(killed).Round(time.Millisecond))

	final := func() map[string]runState {
		out := map[string]runState{}
		for i, id := range runIDs {
			var r runState
			status, _ := b.get(t, "/agents/worker/runs/"+id, &r)
			require.Equal(t, http.StatusOK, status, "run %d", i)
			out[id] = r
		}
		return out
	}
	states := final()
	calls, _ = fm.counts()
	byStatus := map[string]int{}
	for i, id := range runIDs {
		marker := fmt.Sprintf("bg%d", i)
		r := states[id]
		byStatus[r.Status]++
		switch r.Status {
		case "COMPLETED":
			require.Equal(t, 1, calls[marker], "a completed run %d was executed once", i)
			require.Equal(t, fm.answer(marker), r.Content)
		case "ERROR":
			require.NotEmpty(t, r.Error, "run %d ended ERROR with a reason", i)
			// Only runs A had claimed may fail, and A called the model at
			// most once for them (none if it died before the call).
			require.LessOrEqual(t, calls[marker], 1, "run %d", i)
			for _, rep := range fm.seen(marker) {
				require.Equal(t, "a", rep, "run %d failed though B executed it", i)
			}
		default:
			t.Fatalf("run %d ended %s: %+v", i, r.Status, r)
		}
	}
	for m, n := range calls {
		require.LessOrEqual(t, n, 1, "the model saw run %s %d times", m, n)
	}
	require.Positive(t, byStatus["COMPLETED"])
	t.Logf("runs: %v; ERROR runs: %s", byStatus, errorReasons(states))

	// Exactly one terminal state: nothing changes any more.
	time.Sleep(time.Second)
	require.Equal(t, states, final())
	again, _ := fm.counts()
	require.Equal(t, calls, again)

	// Documents: each ingested once, with its exact chunk count, on both
	// the API and the chunk table (no duplicates, indexes 0..n-1).
	chunkRows := map[string][3]int{}
	rows, err := db.QueryContext(t.Context(), `SELECT document_id, count(*), count(DISTINCT idx), max(idx) FROM knowledge_chunks GROUP BY document_id`)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var n, distinct, maxIdx int
		require.NoError(t, rows.Scan(&id, &n, &distinct, &maxIdx))
		chunkRows[id] = [3]int{n, distinct, maxIdx}
	}
	require.NoError(t, rows.Err())
	all := append(docs, searchDocs...)
	require.Len(t, chunkRows, len(all), "no chunks of unknown documents")
	for _, d := range all {
		want := wantChunks(t, d)
		require.Equal(t, [3]int{want, want, want - 1}, chunkRows[d.ID], "chunks of %s", d.Name)
		var st document
		status, _ := b.get(t, "/knowledge/content/"+d.ID+"/status", &st)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "completed", st.Status, d.Name)
		require.Equal(t, want, st.Chunks, d.Name)
	}
	var nDocsStored int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(*) FROM knowledge_documents`).Scan(&nDocsStored))
	require.Equal(t, len(all), nDocsStored)
	t.Logf("test took %s", time.Since(start).Round(time.Millisecond))
}

// TestKilledProcessResumesOnRestart is the single-process bar of issue 15,
// on the embedded default (SQLite): `troupe serve` is killed with SIGKILL
// while background runs execute and others wait, and the same command is
// started again. The waiting runs then run, each once, to COMPLETED; the
// runs that were executing end ERROR with the interrupted reason (at most
// once: they are not run again).
func TestKilledProcessResumesOnRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	t.Parallel()
	start := time.Now()
	fm := newFakeModel(t, 4, 20*time.Millisecond)
	const n, workers = 6, 2
	var opens []func()
	for i := range n {
		opens = append(opens, fm.gate(fmt.Sprintf("sq%d", i)))
	}
	cfg := replicaConfig{name: "solo", db: filepath.Join(t.TempDir(), "troupe.db"), model: fm.srv.URL, defaultID: true,
		extra: []string{"--max-background-runs", strconv.Itoa(workers)}}
	p, cfg := startReplica(t, cfg)
	ids := make([]string, n)
	for i := range n {
		id, err := p.submit(t, fmt.Sprintf("job %d [run:sq%d]", i, i))
		require.NoError(t, err)
		ids[i] = id
	}
	// The model holds every answer: two runs execute, four wait.
	require.Eventually(t, func() bool { _, inFlight := fm.counts(); return inFlight["solo"] == workers }, 10*time.Second, 5*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // no third run starts
	executing := map[string]bool{}
	calls, _ := fm.counts()
	for i := range n {
		if calls[fmt.Sprintf("sq%d", i)] > 0 {
			executing[ids[i]] = true
		}
	}
	require.Len(t, executing, workers)
	for i, id := range ids {
		var r runState
		status, _ := p.get(t, "/agents/worker/runs/"+id, &r)
		require.Equal(t, http.StatusOK, status)
		want := "PENDING"
		if executing[id] {
			want = "RUNNING"
		}
		require.Equal(t, want, r.Status, "run %d before the kill", i)
	}
	p.kill(t)
	for _, open := range opens {
		open()
	}

	restarted := time.Now()
	p, _ = startReplica(t, cfg)
	states := map[string]runState{}
	require.Eventually(t, func() bool {
		for _, id := range ids {
			var r runState
			status, _ := p.get(t, "/agents/worker/runs/"+id, &r)
			require.Equal(t, http.StatusOK, status)
			states[id] = r
			if r.Status == "PENDING" || r.Status == "RUNNING" {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "every run ends after the restart")
	t.Logf("every run ended %s after the restart", time.Since(restarted).Round(time.Millisecond))
	// Nothing more happens: no run is executed a second time.
	time.Sleep(500 * time.Millisecond)
	calls, _ = fm.counts()
	for i, id := range ids {
		marker := fmt.Sprintf("sq%d", i)
		var r runState
		status, _ := p.get(t, "/agents/worker/runs/"+id, &r)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, states[id], r, "run %d ended once", i)
		require.Equal(t, 1, calls[marker], "the model saw run %d once", i)
		if executing[id] {
			require.Equal(t, "ERROR", r.Status, "run %d was executing", i)
			require.Equal(t, "the server stopped while this run was in progress", r.Error)
		} else {
			require.Equal(t, "COMPLETED", r.Status, "run %d was waiting", i)
			require.Equal(t, fm.answer(marker), r.Content)
		}
	}
	t.Logf("test took %s", time.Since(start).Round(time.Millisecond))
}

// errorReasons lists the distinct errors of failed runs.
func errorReasons(states map[string]runState) string {
	var out []string
	for _, r := range states {
		if r.Status == "ERROR" && !slices.Contains(out, r.Error) {
			out = append(out, r.Error)
		}
	}
	return strings.Join(out, " | ")
}

// waitFor polls cond until it holds or d passes, and reports whether it held.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// dbState describes the open jobs and the runs by status, for failures.
func dbState(t *testing.T, db *sql.DB) string {
	var b strings.Builder
	query := func(q string) {
		rows, err := db.QueryContext(context.WithoutCancel(t.Context()), q)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", q, err)
			return
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		fmt.Fprintf(&b, "%s\n", strings.Join(cols, " | "))
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			_ = rows.Scan(ptrs...)
			fmt.Fprintf(&b, "%v\n", vals)
		}
	}
	query(`SELECT kind, state, attempt, attempted_by, attempted_at, errors FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled') ORDER BY id`)
	query(`SELECT status, count(*) FROM runs GROUP BY status`)
	query(`SELECT id, status, error, replica_id FROM runs WHERE status IN ('PENDING', 'RUNNING')`)
	query(`SELECT * FROM replicas`)
	query(`SELECT * FROM river_leader`)
	return b.String()
}
