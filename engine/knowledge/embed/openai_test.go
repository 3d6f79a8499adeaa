package embed

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
)

const testKey = "sk-test-SECRET-key-123"

// item is one element of a response's data, as OpenAI sends it.
type item struct {
	Object    string    `json:"object"`
	Index     int       `json:"index"`
	Embedding []float32 `json:"embedding"`
}

func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// decodeRequest reads an embeddings request; it reports problems with assert,
// since it runs on the server's goroutines.
func decodeRequest(t *testing.T, r *http.Request) embeddingRequest {
	var req embeddingRequest
	body, err := io.ReadAll(r.Body)
	assert.NoError(t, err)
	assert.NoError(t, json.Unmarshal(body, &req), "body %s", body)
	return req
}

// vecFor is the server's embedding of input "t<n>": [1, n], not normalised,
// so a test can tell which input a vector belongs to (n = v[1]/v[0]).
func vecFor(input string) []float32 {
	n, _ := strconv.Atoi(strings.TrimPrefix(input, "t"))
	return []float32{1, float32(n)}
}

func inputOf(v []float32) int { return int(math.Round(float64(v[1] / v[0]))) }

func writeItems(w http.ResponseWriter, items []item) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "list",
		"data":   items,
		"model":  "text-embedding-3-small",
		"usage":  map[string]int{"prompt_tokens": 1, "total_tokens": 1},
	})
}

// answer embeds req's inputs with vecFor, listed in reverse index order to
// check that the client re-orders by index.
func answer(w http.ResponseWriter, req embeddingRequest) {
	items := make([]item, len(req.Input))
	for i, in := range req.Input {
		items[i] = item{Object: "embedding", Index: i, Embedding: vecFor(in)}
	}
	slices.Reverse(items)
	writeItems(w, items)
}

func inputs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "t" + strconv.Itoa(i)
	}
	return out
}

// fast makes retries wait only a little, unless the server says otherwise.
func fast(e *OpenAI) *OpenAI {
	e.backoff = model.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, MaxRetryAfter: 5 * time.Second}
	return e
}

func TestOpenAIWireFormat(t *testing.T) {
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, "/v1/embeddings", r.URL.Path)
		assert.Equal(t, "Bearer "+testKey, r.Header.Get("Authorization"))
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		var raw map[string]any
		body, _ := io.ReadAll(r.Body)
		assert.NoError(t, json.Unmarshal(body, &raw))
		assert.Equal(t, map[string]any{
			"model":           "text-embedding-3-small",
			"input":           []any{"hello", "world"},
			"encoding_format": "float",
		}, raw)
		writeItems(w, []item{
			{Object: "embedding", Index: 0, Embedding: []float32{3, 4}},
			{Object: "embedding", Index: 1, Embedding: []float32{0, -2}},
		})
	})
	e := NewOpenAI(OpenAIOptions{Model: "text-embedding-3-small", BaseURL: srv.URL + "/v1/", APIKey: testKey})
	require.Equal(t, "openai/text-embedding-3-small", e.Name())
	require.Zero(t, e.Dimension())

	vs, err := e.Embed(context.Background(), []string{"hello", "world"})
	require.NoError(t, err)
	require.Equal(t, int32(1), calls.Load())
	require.Equal(t, 2, e.Dimension())
	require.InDeltaSlice(t, []float32{0.6, 0.8}, vs[0], 1e-6, "normalised")
	require.InDeltaSlice(t, []float32{0, -1}, vs[1], 1e-6)
}

func TestOpenAIDefaults(t *testing.T) {
	e := NewOpenAI(OpenAIOptions{})
	require.Equal(t, "openai/"+DefaultOpenAIModel, e.Name())
	require.Equal(t, DefaultOpenAIBaseURL+"/embeddings", e.url)
	require.Equal(t, MaxBatchSize, e.batchSize)
	require.Equal(t, DefaultMaxBatchChars, e.maxChars)
	require.Equal(t, DefaultRetries, e.retries)
	require.Equal(t, DefaultTimeout, e.timeout)

	e = NewOpenAI(OpenAIOptions{Model: "nomic-embed-text", BaseURL: OllamaOpenAIBaseURL, BatchSize: 1000, Retries: -1, Dimension: 768})
	require.Equal(t, "openai/nomic-embed-text", e.Name())
	require.Equal(t, "http://localhost:11434/v1/embeddings", e.url)
	require.Equal(t, MaxBatchSize, e.batchSize)
	require.Zero(t, e.retries)
	require.Equal(t, 768, e.Dimension())
}

func TestOpenAIBatchingPreservesOrder(t *testing.T) {
	var (
		mu    sync.Mutex
		sizes []int
	)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		req := decodeRequest(t, r)
		mu.Lock()
		sizes = append(sizes, len(req.Input))
		mu.Unlock()
		answer(w, req) // data in reverse index order
	})
	e := NewOpenAI(OpenAIOptions{BaseURL: srv.URL})
	vs, err := e.Embed(context.Background(), inputs(600))
	require.NoError(t, err)
	require.Len(t, vs, 600)
	for i, v := range vs {
		require.Equal(t, i, inputOf(v), "vector %d", i)
		require.InDelta(t, 1.0, norm2(v), 1e-6)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(sizes)
	require.Equal(t, []int{88, 256, 256}, sizes)
}

func TestOpenAIBatches(t *testing.T) {
	tests := []struct {
		name       string
		batchSize  int
		maxChars   int
		texts      []string
		want       [][]int
		wantBlanks int
	}{
		{"one batch", 10, 100, []string{"a", "b", "c"}, [][]int{{0, 1, 2}}, 0},
		{"by count", 2, 100, []string{"a", "b", "c", "d", "e"}, [][]int{{0, 1}, {2, 3}, {4}}, 0},
		{"by chars", 10, 5, []string{"aaa", "bb", "c", "dddd"}, [][]int{{0, 1}, {2, 3}}, 0},
		{"long text alone", 10, 5, []string{"a", "bbbbbbbbbb", "c"}, [][]int{{0}, {1}, {2}}, 0},
		{"blanks skipped", 2, 100, []string{"", "a", " \n", "b", "c"}, [][]int{{1, 3}, {4}}, 2},
		{"only blanks", 2, 100, []string{"", "  "}, nil, 2},
		{"none", 2, 100, nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewOpenAI(OpenAIOptions{BatchSize: tt.batchSize, MaxBatchChars: tt.maxChars})
			got, blanks := e.batches(tt.texts)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantBlanks, blanks)
		})
	}
}

func TestOpenAIConcurrencyLimit(t *testing.T) {
	var inFlight, peak, calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		req := decodeRequest(t, r)
		time.Sleep(20 * time.Millisecond)
		answer(w, req)
	})
	e := NewOpenAI(OpenAIOptions{BaseURL: srv.URL, BatchSize: 5})
	// Two Embed calls share the embedder's limit.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			vs, err := e.Embed(context.Background(), inputs(100))
			assert.NoError(t, err)
			for i, v := range vs {
				assert.Equal(t, i, inputOf(v))
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(40), calls.Load())
	require.LessOrEqual(t, peak.Load(), int32(MaxInFlight))
	require.Greater(t, peak.Load(), int32(1), "batches run concurrently")
}

func TestOpenAIErrorsAndRetries(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		failures  int // error responses before a success
		retries   int
		wantKind  model.ErrorKind // "" for success
		wantCalls int32
		wantMsg   string
	}{
		{name: "500 retried", status: 500, body: `{"error":{"message":"boom","type":"server_error"}}`, failures: 2, wantCalls: 3},
		{name: "503 gives up", status: 503, body: "upstream down", failures: 10, retries: 2, wantKind: model.ErrOverloaded, wantCalls: 3, wantMsg: "upstream down"},
		{name: "429 retried", status: 429, header: map[string]string{"Retry-After-Ms": "20"}, body: `{"error":{"message":"slow down","type":"rate_limit_exceeded"}}`, failures: 1, wantCalls: 2},
		{name: "400 not retried", status: 400, body: `{"error":{"message":"'$.input' is invalid","type":"invalid_request_error"}}`, failures: 10, wantKind: model.ErrBadRequest, wantCalls: 1, wantMsg: "'$.input' is invalid"},
		{name: "context length", status: 400, body: `{"error":{"message":"too long","code":"context_length_exceeded"}}`, failures: 10, wantKind: model.ErrContextLength, wantCalls: 1},
		{name: "401 auth", status: 401, body: `{"error":{"message":"Incorrect API key provided: ` + testKey + `","code":"invalid_api_key"}}`, failures: 10, wantKind: model.ErrAuth, wantCalls: 1, wantMsg: "Incorrect API key provided: [redacted]"},
		{name: "403 auth", status: 403, body: `{"error":"forbidden"}`, failures: 10, wantKind: model.ErrAuth, wantCalls: 1, wantMsg: "forbidden"},
		{name: "no retries", status: 500, body: `{"detail":"crashed"}`, failures: 10, retries: -1, wantKind: model.ErrOverloaded, wantCalls: 1, wantMsg: "crashed"},
		{name: "error in 200 retried", status: 200, body: `{"error":{"message":"overloaded","type":"server_error"}}`, failures: 1, wantCalls: 2},
		{name: "rate limit in 200", status: 200, body: `{"error":{"message":"slow down","code":"too_many_requests"}}`, failures: 10, retries: -1, wantKind: model.ErrRateLimit, wantCalls: 1, wantMsg: "slow down"},
		{name: "error in 200 unknown", status: 200, body: `{"error":{"message":"weird"}}`, failures: 10, wantKind: model.ErrProtocol, wantCalls: 1, wantMsg: "weird"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				req := decodeRequest(t, r)
				if int(calls.Add(1)) <= tt.failures {
					for k, v := range tt.header {
						w.Header().Set(k, v)
					}
					w.WriteHeader(tt.status)
					_, _ = io.WriteString(w, tt.body)
					return
				}
				answer(w, req)
			})
			e := fast(NewOpenAI(OpenAIOptions{BaseURL: srv.URL, APIKey: testKey, Retries: tt.retries}))
			vs, err := e.Embed(context.Background(), inputs(3))
			require.Equal(t, tt.wantCalls, calls.Load())
			if tt.wantKind == "" {
				require.NoError(t, err)
				for i, v := range vs {
					require.Equal(t, i, inputOf(v))
				}
				return
			}
			require.Error(t, err)
			require.Nil(t, vs)
			require.Equal(t, tt.wantKind, model.KindOf(err), "%v", err)
			require.NotContains(t, err.Error(), testKey)
			require.Contains(t, err.Error(), tt.wantMsg)
			require.Contains(t, err.Error(), "openai/"+DefaultOpenAIModel)
		})
	}
}

func TestOpenAIHonoursRetryAfter(t *testing.T) {
	var (
		calls         atomic.Int32
		mu            sync.Mutex
		first, second time.Time
	)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		req := decodeRequest(t, r)
		mu.Lock()
		defer mu.Unlock()
		if calls.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
			return
		}
		second = time.Now()
		answer(w, req)
	})
	e := fast(NewOpenAI(OpenAIOptions{BaseURL: srv.URL}))
	vs, err := e.Embed(context.Background(), inputs(2))
	require.NoError(t, err)
	require.Equal(t, int32(2), calls.Load())
	require.Equal(t, 1, inputOf(vs[1]))
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, second.Sub(first), 900*time.Millisecond, "waited for Retry-After, not the 1ms backoff")
}

func TestOpenAITimeout(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	e := fast(NewOpenAI(OpenAIOptions{BaseURL: srv.URL, Timeout: 50 * time.Millisecond, Retries: 1}))
	start := time.Now()
	_, err := e.Embed(context.Background(), []string{"hello"})
	require.Error(t, err)
	require.Equal(t, model.ErrTimeout, model.KindOf(err), "%v", err)
	require.True(t, model.Retryable(err))
	require.Contains(t, err.Error(), "no answer within 50ms")
	require.Equal(t, int32(2), calls.Load(), "a timeout is retried")
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestOpenAIContextCancel(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 16)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	e := fast(NewOpenAI(OpenAIOptions{BaseURL: srv.URL, BatchSize: 1}))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	start := time.Now()
	vs, err := e.Embed(ctx, inputs(20))
	require.ErrorIs(t, err, context.Canceled)
	require.Nil(t, vs)
	require.Less(t, time.Since(start), 2*time.Second)

	// Cancelled before starting: no request at all.
	_, err = e.Embed(ctx, inputs(1))
	require.ErrorIs(t, err, context.Canceled)
}

func TestOpenAIDimensionMismatch(t *testing.T) {
	t.Run("between responses", func(t *testing.T) {
		var calls atomic.Int32
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			req := decodeRequest(t, r)
			dim := 3
			if calls.Add(1) > 1 {
				dim = 4
			}
			items := make([]item, len(req.Input))
			for i := range items {
				items[i] = item{Index: i, Embedding: slices.Repeat([]float32{1}, dim)}
			}
			writeItems(w, items)
		})
		e := fast(NewOpenAI(OpenAIOptions{BaseURL: srv.URL}))
		_, err := e.Embed(context.Background(), []string{"a"})
		require.NoError(t, err)
		require.Equal(t, 3, e.Dimension())
		_, err = e.Embed(context.Background(), []string{"b"})
		require.Error(t, err)
		require.Equal(t, model.ErrProtocol, model.KindOf(err))
		require.False(t, model.Retryable(err))
		require.Contains(t, err.Error(), "4 dimensions, earlier responses had 3")
		require.Equal(t, 3, e.Dimension())
	})
	t.Run("within one response", func(t *testing.T) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeItems(w, []item{{Index: 0, Embedding: []float32{1, 2}}, {Index: 1, Embedding: []float32{1, 2, 3}}})
		})
		_, err := NewOpenAI(OpenAIOptions{BaseURL: srv.URL}).Embed(context.Background(), []string{"a", "b"})
		require.Equal(t, model.ErrProtocol, model.KindOf(err), "%v", err)
		require.Contains(t, err.Error(), "dimensions")
	})
	t.Run("configured", func(t *testing.T) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeItems(w, []item{{Index: 0, Embedding: []float32{1, 2, 3}}})
		})
		e := NewOpenAI(OpenAIOptions{BaseURL: srv.URL, Dimension: 1536})
		_, err := e.Embed(context.Background(), []string{"a"})
		require.Equal(t, model.ErrProtocol, model.KindOf(err), "%v", err)
		require.Contains(t, err.Error(), "3 dimensions, configured dimension is 1536")
	})
}

func TestOpenAIProtocolErrors(t *testing.T) {
	tests := []struct {
		name, body, wantMsg string
	}{
		{"invalid json", `{"data": [`, "invalid JSON response"},
		{"too few", `{"data":[{"index":0,"embedding":[1,2]}]}`, "1 embeddings for 2 inputs"},
		{"repeated index", `{"data":[{"index":0,"embedding":[1,2]},{"index":0,"embedding":[1,2]}]}`, "index 0 repeated"},
		{"index out of range", `{"data":[{"index":0,"embedding":[1,2]},{"index":2,"embedding":[1,2]}]}`, "index 2 out of range"},
		{"empty embedding", `{"data":[{"index":0,"embedding":[]},{"index":1,"embedding":[1,2]}]}`, "embedding 0 is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				_, _ = io.WriteString(w, tt.body)
			})
			_, err := NewOpenAI(OpenAIOptions{BaseURL: srv.URL}).Embed(context.Background(), []string{"a", "b"})
			require.Equal(t, model.ErrProtocol, model.KindOf(err), "%v", err)
			require.Contains(t, err.Error(), tt.wantMsg)
			require.Equal(t, int32(1), calls.Load(), "protocol errors are not retried")
		})
	}
}

func TestOpenAITolerantResponses(t *testing.T) {
	b64 := func(v ...float32) string {
		raw := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
		}
		return base64.StdEncoding.EncodeToString(raw)
	}
	tests := []struct {
		name, body string
		want       [][]float32
	}{
		{"no index", `{"data":[{"embedding":[1,0]},{"embedding":[0,2]}]}`, [][]float32{{1, 0}, {0, 1}}},
		{"base64", fmt.Sprintf(`{"data":[{"index":1,"embedding":%q},{"index":0,"embedding":%q}]}`, b64(0, 5), b64(3, 4)), [][]float32{{0.6, 0.8}, {0, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, tt.body) })
			vs, err := NewOpenAI(OpenAIOptions{BaseURL: srv.URL}).Embed(context.Background(), []string{"a", "b"})
			require.NoError(t, err)
			for i := range tt.want {
				require.InDeltaSlice(t, tt.want[i], vs[i], 1e-6)
			}
		})
	}
}

func TestOpenAIBlankTexts(t *testing.T) {
	var (
		mu   sync.Mutex
		seen [][]string
	)
	requests := func() [][]string {
		mu.Lock()
		defer mu.Unlock()
		r := seen
		seen = nil
		return r
	}
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		req := decodeRequest(t, r)
		mu.Lock()
		seen = append(seen, req.Input)
		mu.Unlock()
		assert.Equal(t, "", r.Header.Get("Authorization"), "no key, no header")
		answer(w, req)
	})

	e := NewOpenAI(OpenAIOptions{BaseURL: srv.URL})
	vs, err := e.Embed(context.Background(), []string{"", "t7", "  \n"})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"t7"}}, requests(), "blank texts are not sent")
	require.Equal(t, []float32{0, 0}, vs[0])
	require.Equal(t, 7, inputOf(vs[1]))
	require.Equal(t, []float32{0, 0}, vs[2])

	// A fresh embedder given only blank texts learns its dimension first.
	vs, err = NewOpenAI(OpenAIOptions{BaseURL: srv.URL}).Embed(context.Background(), []string{""})
	require.NoError(t, err)
	require.Len(t, requests(), 1)
	require.Equal(t, [][]float32{{0, 0}}, vs)

	// With a configured dimension, no request is needed.
	vs, err = NewOpenAI(OpenAIOptions{BaseURL: srv.URL, Dimension: 3}).Embed(context.Background(), []string{"", " "})
	require.NoError(t, err)
	require.Empty(t, requests())
	require.Equal(t, [][]float32{{0, 0, 0}, {0, 0, 0}}, vs)

	vs, err = e.Embed(context.Background(), nil)
	require.NoError(t, err)
	require.Empty(t, vs)
}

func TestOpenAINetworkError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	url := srv.URL
	srv.Close() // nothing listens any more
	e := fast(NewOpenAI(OpenAIOptions{BaseURL: url, APIKey: testKey, Retries: 2}))
	_, err := e.Embed(context.Background(), []string{"a"})
	require.Equal(t, model.ErrNetwork, model.KindOf(err), "%v", err)
	require.NotContains(t, err.Error(), testKey)
}
