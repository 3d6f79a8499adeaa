package model_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/openai"
)

// vendor is an OpenAI-wire server that answers each request with the next
// scripted status (200 answers name the model that was asked for).
type vendor struct {
	srv      *httptest.Server
	mu       sync.Mutex
	statuses []int
	models   []string
	hits     atomic.Int32
}

func newVendor(t *testing.T, statuses ...int) *vendor {
	v := &vendor{statuses: statuses}
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.hits.Add(1)
		var body struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &body)
		v.mu.Lock()
		status := http.StatusOK
		if len(v.statuses) > 0 {
			status, v.statuses = v.statuses[0], v.statuses[1:]
		}
		v.models = append(v.models, body.Model)
		v.mu.Unlock()
		switch status {
		case http.StatusOK:
			if body.Stream {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"from %s\"}}]}\n\n", body.Model)
				fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
				return
			}
			fmt.Fprintf(w, `{"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"from %s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`, body.Model, body.Model)
		case -1: // stream some content, then break off
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"}}]}\n\n")
			w.(http.Flusher).Flush()
			fmt.Fprint(w, "data: {\"error\":{\"message\":\"upstream died\",\"type\":\"server_error\"}}\n\n")
		default:
			if status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "0.02")
			}
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"message":"status %d","type":"x"}}`, status)
		}
	}))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendor) target(model string, retries int) model.Target {
	return modelTarget(openai.New(openai.Options{BaseURL: v.srv.URL, APIKey: "sk-test"}), model, retries)
}

func modelTarget(p model.Provider, m string, retries int) model.Target {
	return model.Target{Provider: p, Name: "openai", Model: m, Retries: retries, Timeout: 5 * time.Second}
}

var fast = model.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, MaxRetryAfter: time.Second}

func req() *model.Request {
	return &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: "hi"}}}
}

func TestRateLimitThenSuccess(t *testing.T) {
	t.Parallel()
	v := newVendor(t, http.StatusTooManyRequests, http.StatusOK)
	var waits []time.Duration
	c := &model.Chain{Targets: []model.Target{v.target("gpt-a", 2)}, Backoff: fast,
		OnRetry: func(_ model.Target, _ int, err error, wait time.Duration) {
			require.Equal(t, model.ErrRateLimit, model.KindOf(err))
			waits = append(waits, wait)
		}}
	resp, err := c.Generate(t.Context(), req(), nil)
	require.NoError(t, err)
	require.Equal(t, "from gpt-a", resp.Content)
	require.EqualValues(t, 2, v.hits.Load())
	require.Len(t, waits, 1)
	require.GreaterOrEqual(t, waits[0], 20*time.Millisecond, "Retry-After is honoured")
}

func TestFallbackToSecondModel(t *testing.T) {
	t.Parallel()
	primary := newVendor(t, 500, 502, 503)
	secondary := newVendor(t)
	c := &model.Chain{Targets: []model.Target{primary.target("gpt-big", 2), secondary.target("gpt-small", 0)}, Backoff: fast}
	for _, stream := range []bool{false, true} {
		primary.mu.Lock()
		primary.statuses = []int{500, 502, 503}
		primary.mu.Unlock()
		var deltas []model.Delta
		var onDelta func(model.Delta)
		if stream {
			onDelta = func(d model.Delta) { deltas = append(deltas, d) }
		}
		resp, err := c.Generate(t.Context(), req(), onDelta)
		require.NoError(t, err)
		require.Equal(t, "from gpt-small", resp.Content)
		if stream {
			require.Equal(t, []model.Delta{{Content: "from gpt-small"}}, deltas)
		}
	}
	require.EqualValues(t, 6, primary.hits.Load(), "three attempts per call on the primary")
	require.Equal(t, []string{"gpt-small", "gpt-small"}, secondary.models)
}

func TestNoRetryForBadRequest(t *testing.T) {
	t.Parallel()
	v := newVendor(t, http.StatusBadRequest)
	other := newVendor(t)
	c := &model.Chain{Targets: []model.Target{v.target("a", 3), other.target("b", 0)}, Backoff: fast}
	_, err := c.Generate(t.Context(), req(), nil)
	require.Equal(t, model.ErrBadRequest, model.KindOf(err))
	require.EqualValues(t, 1, v.hits.Load())
	require.EqualValues(t, 0, other.hits.Load(), "a wrong request is not sent to fallbacks")
}

func TestAuthErrorFallsBackWithoutRetry(t *testing.T) {
	t.Parallel()
	v := newVendor(t, http.StatusUnauthorized)
	other := newVendor(t)
	c := &model.Chain{Targets: []model.Target{v.target("a", 3), other.target("b", 0)}, Backoff: fast}
	resp, err := c.Generate(t.Context(), req(), nil)
	require.NoError(t, err)
	require.Equal(t, "from b", resp.Content)
	require.EqualValues(t, 1, v.hits.Load())
}

func TestDeliveredStreamIsNotRetried(t *testing.T) {
	t.Parallel()
	v := newVendor(t, -1, http.StatusOK)
	other := newVendor(t)
	c := &model.Chain{Targets: []model.Target{v.target("a", 3), other.target("b", 0)}, Backoff: fast}
	var got string
	_, err := c.Generate(t.Context(), req(), func(d model.Delta) { got += d.Content })
	require.Error(t, err)
	require.Equal(t, "partial", got)
	require.EqualValues(t, 1, v.hits.Load())
	require.EqualValues(t, 0, other.hits.Load())
}

func TestEveryModelFails(t *testing.T) {
	t.Parallel()
	a, b := newVendor(t, 503), newVendor(t, 503)
	c := &model.Chain{Targets: []model.Target{a.target("a", 0), b.target("b", 0)}, Backoff: fast}
	_, err := c.Generate(t.Context(), req(), nil)
	require.ErrorContains(t, err, "every model failed")
	require.ErrorContains(t, err, "openai/a: openai: HTTP 503: overloaded: status 503")
	require.Equal(t, model.ErrOverloaded, model.KindOf(err))
}

// stall blocks until its context ends.
type stall struct{ calls atomic.Int32 }

func (s *stall) Generate(ctx context.Context, _ *model.Request, _ func(model.Delta)) (*model.Response, error) {
	s.calls.Add(1)
	<-ctx.Done()
	return nil, model.TransportError(ctx, "stall", ctx.Err())
}

func TestPerRequestTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	s := &stall{}
	tgt := modelTarget(s, "m", 1)
	tgt.Timeout = 20 * time.Millisecond
	c := &model.Chain{Targets: []model.Target{tgt}, Backoff: fast}
	_, err := c.Generate(t.Context(), req(), nil)
	require.Equal(t, model.ErrTimeout, model.KindOf(err))
	require.EqualValues(t, 2, s.calls.Load())
}

func TestCancelDuringBackoff(t *testing.T) {
	t.Parallel()
	v := newVendor(t, 503, 503, 503)
	c := &model.Chain{Targets: []model.Target{v.target("a", 3)}, Backoff: model.Backoff{Base: time.Hour, Max: time.Hour}}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Generate(ctx, req(), nil)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), time.Second)
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"seconds", http.Header{"Retry-After": {"3"}}, 3 * time.Second},
		{"fraction", http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{"date", http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{"past date", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"milliseconds header wins", http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"9"}}, 250 * time.Millisecond},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"absent", http.Header{}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, model.ParseRetryAfter(tt.header, now))
		})
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	require.True(t, model.Retryable(&model.Error{Kind: model.ErrRateLimit}))
	require.True(t, model.Retryable(fmt.Errorf("wrapped: %w", &model.Error{Kind: model.ErrNetwork})))
	require.False(t, model.Retryable(&model.Error{Kind: model.ErrAuth}))
	require.False(t, model.Retryable(context.Canceled))
	require.False(t, model.Retryable(errors.New("plain")))
}

func TestRegistryPoolsByConfig(t *testing.T) {
	t.Parallel()
	built := 0
	r := model.NewRegistry()
	r.Register("openai", func(c model.Config) (model.Provider, error) {
		built++
		return openai.New(openai.Options{BaseURL: c.BaseURL, APIKey: c.APIKey}), nil
	})
	a, err := r.Provider(model.Config{Provider: "openai", APIKey: "k1"})
	require.NoError(t, err)
	b, err := r.Provider(model.Config{Provider: "openai", APIKey: "k1"})
	require.NoError(t, err)
	require.Same(t, a, b)
	_, err = r.Provider(model.Config{Provider: "openai", APIKey: "k2"})
	require.NoError(t, err)
	require.Equal(t, 2, built)
	_, err = r.Provider(model.Config{Provider: "mystery"})
	require.ErrorContains(t, err, `no model provider "mystery" is registered`)
	require.Panics(t, func() { r.Register("openai", nil) })
}
