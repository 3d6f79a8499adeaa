package embed

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/openai"
)

// Defaults and limits of the OpenAI embedder.
const (
	DefaultOpenAIBaseURL = openai.DefaultBaseURL
	OllamaOpenAIBaseURL  = openai.OllamaBaseURL // Ollama's OpenAI-compatible API
	DefaultOpenAIModel   = "text-embedding-3-small"
	// MaxBatchSize is the most inputs sent in one request, and the default.
	MaxBatchSize = 256
	// DefaultMaxBatchChars bounds the total size of one request's inputs.
	// OpenAI allows 300,000 tokens per request; a token is rarely less than
	// one byte of UTF-8, so this stays under that with room to spare.
	DefaultMaxBatchChars = 250_000
	DefaultRetries       = 3
	DefaultTimeout       = 60 * time.Second
	// MaxInFlight is how many requests one OpenAI embedder has open at once,
	// across all its Embed calls, by default.
	MaxInFlight = 4
	// DefaultOllamaHost is where Ollama's native API listens unless
	// OLLAMA_HOST or a base URL says otherwise.
	DefaultOllamaHost = "http://localhost:11434"
)

// Wires an embedder speaks.
const (
	// WireOpenAI is POST {base_url}/embeddings with {"model", "input",
	// "encoding_format", "dimensions"}, answered with {"data": [{"index",
	// "embedding"}]}: OpenAI, Azure, vLLM, LM Studio, TEI, Ollama's /v1.
	WireOpenAI = "openai"
	// WireOllama is Ollama's native POST {base_url}/api/embed with
	// {"model", "input", "dimensions"}, answered with {"embeddings": [...]}.
	WireOllama = "ollama"
)

const (
	maxEmbedResponseBytes = 128 << 20 // 256 vectors of 4096 floats as JSON is ~25 MB
	maxEmbedErrorBytes    = 64 << 10
)

// OpenAIOptions configure an OpenAI embedder.
type OpenAIOptions struct {
	// Model is the embedding model id; default DefaultOpenAIModel.
	Model string
	// BaseURL is the API root, to which "/embeddings" is appended; default
	// DefaultOpenAIBaseURL. Ollama, vLLM and other OpenAI-compatible servers
	// are reached through theirs (OllamaOpenAIBaseURL for a local Ollama).
	BaseURL string
	// APIKey is sent as "Authorization: Bearer"; empty sends no header. It
	// never appears in errors.
	APIKey string
	// Headers are sent with every request (an Azure api-key, a gateway's
	// routing header); they may override Authorization.
	Headers map[string]string
	// Wire is WireOpenAI (default) or WireOllama. With WireOllama, BaseURL
	// is the server's root (default DefaultOllamaHost; a trailing /v1, as an
	// Ollama chat Model writes it, is dropped) and Name is "ollama/<model>".
	Wire string
	// Dimension is the expected vector length. Zero learns it from the first
	// response; either way a response of another length is an error.
	Dimension int
	// SendDimension asks the server for Dimension-long vectors (the
	// request's "dimensions", which OpenAI's text-embedding-3 models, vLLM
	// and Ollama accept) instead of only checking what comes back.
	SendDimension bool
	// BatchSize is the most texts per request; default and maximum
	// MaxBatchSize.
	BatchSize int
	// Concurrency is how many requests the embedder has open at once,
	// across all its Embed calls; default MaxInFlight.
	Concurrency int
	// MaxBatchChars bounds the total length of one request's texts, counted
	// in bytes of UTF-8 (which is at least their number of characters);
	// default DefaultMaxBatchChars. A single longer text is sent alone.
	MaxBatchChars int
	// Retries is how often a request that failed in a retryable way (rate
	// limit, overload, timeout, network) is repeated; 0 means
	// DefaultRetries, negative means never.
	Retries int
	// Timeout bounds each request, every retry afresh; default
	// DefaultTimeout.
	Timeout time.Duration
	// HTTPClient sends the requests; default a client without overall
	// timeout (Timeout bounds each request).
	HTTPClient *http.Client
}

// OpenAI is a knowledge.Embedder that calls an embeddings API: by default
// one speaking the OpenAI embeddings wire format, POST {base_url}/embeddings
// with {"model", "input": [...], "encoding_format": "float"}, answered with
// {"data": [{"index", "embedding"}]}; with WireOllama, Ollama's native
// /api/embed.
//
// Embed splits its texts into batches (BatchSize texts and MaxBatchChars at
// most), sends up to Concurrency of them at once, retries retryable failures
// with exponential backoff and jitter (a longer Retry-After wins), and puts
// the vectors back in input order using each item's index. Vectors are
// L2-normalised here, since not every server normalises them. Blank texts are
// not sent (servers reject empty input): they get the zero vector.
//
// Errors are *model.Error, classified like model calls (model.KindOf,
// model.Retryable), or ctx's error when ctx is cancelled. OpenAI is safe for
// concurrent use.
type OpenAI struct {
	name      string
	model     string
	url       string
	wire      string
	apiKey    string
	headers   map[string]string
	sendDim   bool
	batchSize int
	maxChars  int
	retries   int
	timeout   time.Duration
	http      *http.Client
	fixedDim  bool
	dim       atomic.Int64 // given, or learned from the first response
	sem       chan struct{}
	backoff   model.Backoff
}

var _ knowledge.Embedder = (*OpenAI)(nil)

// NewOpenAI returns an OpenAI embedder for opts, filling in defaults.
func NewOpenAI(opts OpenAIOptions) *OpenAI {
	concurrency := opts.Concurrency
	if concurrency <= 0 {
		concurrency = MaxInFlight
	}
	e := &OpenAI{
		model:     opts.Model,
		wire:      opts.Wire,
		apiKey:    opts.APIKey,
		headers:   opts.Headers,
		sendDim:   opts.SendDimension && opts.Dimension > 0,
		batchSize: opts.BatchSize,
		maxChars:  opts.MaxBatchChars,
		retries:   opts.Retries,
		timeout:   opts.Timeout,
		http:      opts.HTTPClient,
		sem:       make(chan struct{}, concurrency),
		backoff:   model.DefaultBackoff,
	}
	if e.model == "" {
		e.model = DefaultOpenAIModel
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	if e.wire == WireOllama {
		e.name = "ollama/" + e.model
		if base == "" {
			base = DefaultOllamaHost
		}
		// An Ollama Model document points chat at the OpenAI-compatible
		// /v1; the native API is at the root.
		e.url = strings.TrimSuffix(base, "/v1") + "/api/embed"
	} else {
		e.wire = WireOpenAI
		e.name = "openai/" + e.model
		if base == "" {
			base = DefaultOpenAIBaseURL
		}
		e.url = base + "/embeddings"
	}
	if e.batchSize <= 0 || e.batchSize > MaxBatchSize {
		e.batchSize = MaxBatchSize
	}
	if e.maxChars <= 0 {
		e.maxChars = DefaultMaxBatchChars
	}
	switch {
	case e.retries == 0:
		e.retries = DefaultRetries
	case e.retries < 0:
		e.retries = 0
	}
	if e.timeout <= 0 {
		e.timeout = DefaultTimeout
	}
	if e.http == nil {
		e.http = model.HTTPClient()
	}
	if opts.Dimension > 0 {
		e.fixedDim = true
		e.dim.Store(int64(opts.Dimension))
	}
	return e
}

// Name implements knowledge.Embedder: "openai/<model>" or "ollama/<model>".
func (e *OpenAI) Name() string { return e.name }

// Dimension implements knowledge.Embedder. Without OpenAIOptions.Dimension it
// is 0 until a response has been received (see Probe).
func (e *OpenAI) Dimension() int { return int(e.dim.Load()) }

// Probe returns the dimension, first embedding a short text to learn it if no
// response has been received yet.
func (e *OpenAI) Probe(ctx context.Context) (int, error) {
	if d := e.Dimension(); d > 0 {
		return d, nil
	}
	if err := e.acquire(ctx); err != nil {
		return 0, err
	}
	defer e.release()
	if _, err := e.embedBatch(ctx, []string{"dimension probe"}); err != nil {
		return 0, err
	}
	return e.Dimension(), nil
}

// Embed implements knowledge.Embedder.
func (e *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	batches, blanks := e.batches(texts)

	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel() // stop the other batches
		}
	}
	for _, batch := range batches {
		if err := e.acquire(gctx); err != nil {
			fail(err)
			break
		}
		wg.Go(func() {
			defer e.release()
			inputs := make([]string, len(batch))
			for j, i := range batch {
				inputs[j] = texts[i]
			}
			vecs, err := e.embedBatch(gctx, inputs)
			if err != nil {
				fail(err)
				return
			}
			for j, i := range batch {
				out[i] = vecs[j]
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		// A failure of ours cancelled gctx; when the caller cancelled, say so
		// rather than how some batch noticed.
		if err := ctx.Err(); err != nil && errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, firstErr
	}
	if blanks > 0 {
		dim, err := e.Probe(ctx)
		if err != nil {
			return nil, err
		}
		for i, v := range out {
			if v == nil {
				out[i] = make([]float32, dim)
			}
		}
	}
	return out, nil
}

func (e *OpenAI) acquire(ctx context.Context) error {
	select {
	case e.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *OpenAI) release() { <-e.sem }

// batches groups the indices of the non-blank texts into requests, in order,
// and counts the blank ones.
func (e *OpenAI) batches(texts []string) (batches [][]int, blanks int) {
	var cur []int
	chars := 0
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			blanks++
			continue
		}
		if len(cur) > 0 && (len(cur) >= e.batchSize || chars+len(t) > e.maxChars) {
			batches = append(batches, cur)
			cur, chars = nil, 0
		}
		cur = append(cur, i)
		chars += len(t)
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches, blanks
}

// embedBatch sends one batch, retrying retryable failures.
func (e *OpenAI) embedBatch(ctx context.Context, inputs []string) ([][]float32, error) {
	for attempt := 0; ; attempt++ {
		vecs, err := e.once(ctx, inputs)
		if err == nil {
			return vecs, nil
		}
		if ctx.Err() != nil || !model.Retryable(err) || attempt >= e.retries {
			return nil, err
		}
		timer := time.NewTimer(e.backoff.Delay(attempt, err))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// embeddingRequest is the body of POST /embeddings, and without
// EncodingFormat of Ollama's POST /api/embed.
type embeddingRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format,omitempty"`
	Dimensions     int      `json:"dimensions,omitempty"`
}

// ollamaResponse is the answer of Ollama's /api/embed: one vector per
// input, in input order.
type ollamaResponse struct {
	Embeddings []vector `json:"embeddings"`
	Error      string   `json:"error"`
}

// embeddingResponse is the answer. Index is a pointer so a server that omits
// it can be told from one that says 0: items without index are taken in
// order.
type embeddingResponse struct {
	Data []struct {
		Index     *int   `json:"index"`
		Embedding vector `json:"embedding"`
	} `json:"data"`
	Error *openai.APIError `json:"error"`
}

// vector decodes an embedding sent as a JSON array of numbers or, by servers
// that ignore encoding_format, as base64 of little-endian float32s.
type vector []float32

func (v *vector) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("base64 embedding: %w", err)
		}
		if len(raw)%4 != 0 {
			return fmt.Errorf("base64 embedding of %d bytes is not float32s", len(raw))
		}
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		*v = out
		return nil
	}
	return json.Unmarshal(b, (*[]float32)(v))
}

// once sends one request, bounded by the per-request timeout.
func (e *OpenAI) once(ctx context.Context, inputs []string) ([][]float32, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, e.timeout, errRequestTimeout)
	defer cancel()
	er := embeddingRequest{Model: e.model, Input: inputs}
	if e.wire == WireOpenAI {
		er.EncodingFormat = "float"
	}
	if e.sendDim {
		er.Dimensions = int(e.dim.Load())
	}
	body, err := json.Marshal(er)
	if err != nil {
		return nil, &model.Error{Kind: model.ErrBadRequest, Provider: e.name, Message: "encoding request: " + e.redact(err.Error()), Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return nil, &model.Error{Kind: model.ErrBadRequest, Provider: e.name, Message: "invalid base URL", Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if e.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
	}
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return nil, e.transportError(ctx, err)
	}
	defer resp.Body.Close()
	// Closing the body when ctx ends guarantees a prompt return with any
	// RoundTripper.
	stop := context.AfterFunc(ctx, func() { resp.Body.Close() })
	defer stop()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, e.httpError(ctx, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxEmbedResponseBytes+1))
	if err != nil {
		return nil, e.transportError(ctx, err)
	}
	if len(data) > maxEmbedResponseBytes {
		return nil, e.protocolError(fmt.Sprintf("response body exceeds %d bytes", maxEmbedResponseBytes), nil)
	}
	return e.parse(data, len(inputs))
}

// parse decodes a response to n inputs into n normalised vectors in input
// order.
func (e *OpenAI) parse(data []byte, n int) ([][]float32, error) {
	if e.wire == WireOllama {
		return e.parseOllama(data, n)
	}
	var er embeddingResponse
	if err := json.Unmarshal(data, &er); err != nil {
		return nil, e.protocolError("invalid JSON response", err)
	}
	if er.Error != nil {
		return nil, er.Error.ModelError(e.name, e.redact)
	}
	if len(er.Data) != n {
		return nil, e.protocolError(fmt.Sprintf("%d embeddings for %d inputs", len(er.Data), n), nil)
	}
	out := make([][]float32, n)
	for pos, d := range er.Data {
		i := pos
		if d.Index != nil {
			i = *d.Index
		}
		if i < 0 || i >= n {
			return nil, e.protocolError(fmt.Sprintf("embedding index %d out of range for %d inputs", i, n), nil)
		}
		if out[i] != nil {
			return nil, e.protocolError(fmt.Sprintf("embedding index %d repeated", i), nil)
		}
		v, err := e.check(i, d.Embedding)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// parseOllama decodes an answer of Ollama's /api/embed.
func (e *OpenAI) parseOllama(data []byte, n int) ([][]float32, error) {
	var or ollamaResponse
	if err := json.Unmarshal(data, &or); err != nil {
		return nil, e.protocolError("invalid JSON response", err)
	}
	if or.Error != "" {
		return nil, &model.Error{Kind: model.ErrProtocol, Provider: e.name, Message: e.redact(or.Error)}
	}
	if len(or.Embeddings) != n {
		return nil, e.protocolError(fmt.Sprintf("%d embeddings for %d inputs", len(or.Embeddings), n), nil)
	}
	out := make([][]float32, n)
	for i, raw := range or.Embeddings {
		v, err := e.check(i, raw)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// check validates the i-th vector of a response and normalises it.
func (e *OpenAI) check(i int, raw vector) ([]float32, error) {
	v := []float32(raw)
	if len(v) == 0 {
		return nil, e.protocolError(fmt.Sprintf("embedding %d is empty", i), nil)
	}
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, e.protocolError(fmt.Sprintf("embedding %d has a non-finite component", i), nil)
		}
	}
	if err := e.checkDimension(len(v)); err != nil {
		return nil, err
	}
	normalize(v)
	return v, nil
}

// checkDimension learns the dimension from the first vector and rejects
// vectors of any other length.
func (e *OpenAI) checkDimension(d int) error {
	if e.dim.CompareAndSwap(0, int64(d)) {
		return nil
	}
	if want := e.dim.Load(); int64(d) != want {
		if e.fixedDim {
			return e.protocolError(fmt.Sprintf("embedding has %d dimensions, configured dimension is %d: set the embedder's dimensions to %d, or use a model (or server) that returns %d", d, want, d, want), nil)
		}
		return e.protocolError(fmt.Sprintf("embedding has %d dimensions, earlier responses had %d", d, want), nil)
	}
	return nil
}

// errRequestTimeout is the cause of a request's context when Timeout ends it,
// as opposed to the caller's deadline.
var errRequestTimeout = errors.New("embedding request timed out")

// transportError classifies a failure to send or read, with a timeout
// message that names the per-request limit.
func (e *OpenAI) transportError(ctx context.Context, err error) error {
	terr := model.TransportError(ctx, e.name, err)
	var me *model.Error
	if errors.As(terr, &me) && me.Kind == model.ErrTimeout && errors.Is(context.Cause(ctx), errRequestTimeout) {
		me.Message = "no answer within " + e.timeout.String()
	}
	return terr
}

// httpError classifies a non-2xx response, quoting the server's message.
func (e *OpenAI) httpError(ctx context.Context, resp *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxEmbedErrorBytes))
	if err != nil && ctx.Err() != nil {
		return e.transportError(ctx, err)
	}
	return openai.ResponseError(e.name, resp, body, e.redact)
}

func (e *OpenAI) protocolError(msg string, err error) *model.Error {
	if err != nil {
		msg += ": " + e.redact(err.Error())
	}
	return &model.Error{Kind: model.ErrProtocol, Provider: e.name, Message: msg, Err: err}
}

// redact removes the API key from a message; servers sometimes echo the key
// they rejected.
func (e *OpenAI) redact(s string) string {
	if e.apiKey == "" {
		return s
	}
	return strings.ReplaceAll(s, e.apiKey, "[redacted]")
}
