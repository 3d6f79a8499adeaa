// Package rerank reorders search hits with a reranking model behind the
// common /rerank wire: POST <base_url>/rerank with a query and documents,
// answered with a relevance score per document index. Cohere (v2), Jina and
// Hugging Face Text Embeddings Inference (TEI) speak it with small
// differences, which Client absorbs: the request names the documents both
// "documents" (Cohere, Jina) and "texts" (TEI), and the reply is read as
// {"results": [{"index", "relevance_score"}]} (Cohere, Jina) or
// [{"index", "score"}] (TEI).
package rerank

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
)

// maxReply bounds a rerank reply; a hundred scores fit in a few kilobytes.
const maxReply = 4 << 20

// Options configure a Client.
type Options struct {
	BaseURL string // such as https://api.cohere.com/v2; /rerank is appended
	Model   string // sent as "model" when set (TEI serves one model and ignores it)
	APIKey  string // sent as a bearer token when set
	Headers map[string]string
	// HTTPClient sends the requests; nil means http.DefaultClient. The
	// caller bounds each call with its context.
	HTTPClient *http.Client
}

// Client scores documents against a query. It is safe for concurrent use.
type Client struct {
	opts Options
	url  string
}

// New returns a Client for the reranker at o.BaseURL.
func New(o Options) *Client {
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	return &Client{opts: o, url: strings.TrimRight(o.BaseURL, "/") + "/rerank"}
}

type request struct {
	Model           string   `json:"model,omitempty"`
	Query           string   `json:"query"`
	Documents       []string `json:"documents"`
	Texts           []string `json:"texts"`
	TopN            int      `json:"top_n"`
	ReturnDocuments bool     `json:"return_documents"`
}

type result struct {
	Index          int      `json:"index"`
	RelevanceScore *float64 `json:"relevance_score"`
	Score          *float64 `json:"score"`
}

// Rerank returns the relevance of each document to query, in the
// documents' order, each clamped to 0–1 (Cohere, Jina and TEI's default
// report probabilities). A document the reply leaves out scores 0.
func (c *Client) Rerank(ctx context.Context, query string, documents []string) ([]float64, error) {
	if len(documents) == 0 {
		return nil, nil
	}
	body, err := json.Marshal(request{Model: c.opts.Model, Query: query, Documents: documents, Texts: documents, TopN: len(documents)})
	if err != nil {
		return nil, fmt.Errorf("encoding the rerank request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("rerank request to %s: %w", c.url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.opts.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.APIKey)
	}
	for k, v := range c.opts.Headers {
		req.Header.Set(k, v)
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rerank request to %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("reading the rerank reply from %s: %w", c.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reranker at %s answered %s: %.200s", c.url, resp.Status, bytes.TrimSpace(raw))
	}
	results, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("reranker at %s: %w", c.url, err)
	}
	scores := make([]float64, len(documents))
	for _, r := range results {
		if r.Index < 0 || r.Index >= len(documents) {
			return nil, fmt.Errorf("reranker at %s: index %d out of range for %d documents", c.url, r.Index, len(documents))
		}
		s := r.RelevanceScore
		if s == nil {
			s = r.Score
		}
		if s == nil || math.IsNaN(*s) {
			return nil, fmt.Errorf("reranker at %s: result %d has no score", c.url, r.Index)
		}
		scores[r.Index] = min(max(*s, 0), 1)
	}
	return scores, nil
}

// decode reads either reply shape.
func decode(raw []byte) ([]result, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var rs []result
		if err := json.Unmarshal(raw, &rs); err != nil {
			return nil, fmt.Errorf("decoding the rerank reply: %w", err)
		}
		return rs, nil
	}
	var env struct {
		Results *[]result `json:"results"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("decoding the rerank reply: %w", err)
	}
	if env.Results == nil {
		return nil, errors.New(`the reply has no "results": is base_url the rerank API's (Cohere https://api.cohere.com/v2, Jina https://api.jina.ai/v1, TEI http://host:port)?`)
	}
	return *env.Results, nil
}
