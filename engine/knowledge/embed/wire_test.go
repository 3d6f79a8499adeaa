package embed

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
)

// TestWires checks what each wire sends and how it reads the answer: path,
// body (encoding_format only on the OpenAI wire, dimensions when asked for),
// headers, and vectors back in input order.
func TestWires(t *testing.T) {
	tests := []struct {
		name     string
		opts     OpenAIOptions
		wantPath string
		wantName string
		wantEnc  string
		wantDim  int
	}{
		{name: "openai", opts: OpenAIOptions{Model: "m", APIKey: testKey, Headers: map[string]string{"X-Route": "r1"}},
			wantPath: "/v1/embeddings", wantName: "openai/m", wantEnc: "float"},
		{name: "openai with dimensions", opts: OpenAIOptions{Model: "m", Dimension: 2, SendDimension: true},
			wantPath: "/v1/embeddings", wantName: "openai/m", wantEnc: "float", wantDim: 2},
		{name: "ollama", opts: OpenAIOptions{Model: "nomic", Wire: WireOllama, Headers: map[string]string{"X-Route": "r1"}},
			wantPath: "/api/embed", wantName: "ollama/nomic"},
		{name: "ollama with dimensions", opts: OpenAIOptions{Model: "nomic", Wire: WireOllama, Dimension: 2, SendDimension: true},
			wantPath: "/api/embed", wantName: "ollama/nomic", wantDim: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				assert.Equal(t, tc.wantPath, r.URL.Path)
				assert.Equal(t, tc.opts.Headers["X-Route"], r.Header.Get("X-Route"))
				if tc.opts.APIKey != "" {
					assert.Equal(t, "Bearer "+tc.opts.APIKey, r.Header.Get("Authorization"))
				}
				var raw map[string]any
				assert.NoError(t, json.NewDecoder(r.Body).Decode(&raw))
				enc, _ := raw["encoding_format"].(string)
				assert.Equal(t, tc.wantEnc, enc)
				dim, _ := raw["dimensions"].(float64)
				assert.Equal(t, tc.wantDim, int(dim))
				var in []string
				for _, x := range raw["input"].([]any) {
					in = append(in, x.(string))
				}
				if tc.opts.Wire == WireOllama {
					vecs := make([][]float32, len(in))
					for i, s := range in {
						vecs[i] = vecFor(s)
					}
					_ = json.NewEncoder(w).Encode(map[string]any{"model": "nomic", "embeddings": vecs})
					return
				}
				answer(w, embeddingRequest{Input: in})
			})
			tc.opts.BaseURL = srv.URL + "/v1"
			e := NewOpenAI(tc.opts)
			require.Equal(t, tc.wantName, e.Name())
			vecs, err := e.Embed(t.Context(), []string{"t1", "t2", "t3"})
			require.NoError(t, err)
			require.Len(t, vecs, 3)
			for i, v := range vecs {
				require.Equal(t, i+1, inputOf(v))
			}
		})
	}
}

// TestOllamaErrors: Ollama's {"error": "..."} bodies are classified like
// the chat providers' errors, and retried when retryable.
func TestOllamaErrors(t *testing.T) {
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"server busy"}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"model \"nope\" not found, try pulling it first"}`))
	})
	e := NewOpenAI(OpenAIOptions{Model: "nope", Wire: WireOllama, BaseURL: srv.URL})
	e.backoff = model.Backoff{Base: time.Millisecond, Max: time.Millisecond}
	_, err := e.Embed(t.Context(), []string{"t1"})
	require.Error(t, err)
	require.Equal(t, model.ErrBadRequest, model.KindOf(err))
	require.Contains(t, err.Error(), "try pulling it first")
	require.Equal(t, int32(2), calls.Load())
}

// TestConcurrencyOption: Concurrency bounds the requests in flight.
func TestConcurrencyOption(t *testing.T) {
	var (
		mu            sync.Mutex
		inFlight, top int
	)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		top = max(top, inFlight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		answer(w, decodeRequest(t, r))
	})
	e := NewOpenAI(OpenAIOptions{BaseURL: srv.URL, BatchSize: 1, Concurrency: 2})
	texts := make([]string, 10)
	for i := range texts {
		texts[i] = "t" + string(rune('0'+i))
	}
	_, err := e.Embed(t.Context(), texts)
	require.NoError(t, err)
	require.Equal(t, 2, top)
}
