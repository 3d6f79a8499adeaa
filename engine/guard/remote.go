package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/model"
)

// modelCheck asks a model, with the guardrail's prompt as instructions and
// the text as the user message, for ALLOW or BLOCK.
type modelCheck struct {
	provider model.Provider
	prompt   string
	timeout  time.Duration
}

func (c *modelCheck) check(ctx context.Context, text string, cl *call) (verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req := &model.Request{
		System:   c.prompt + "\n\nAnswer with ALLOW or BLOCK as the first word, optionally followed by a short reason.",
		Messages: []model.Message{{Role: model.RoleUser, Content: text}},
	}
	resp, err := c.provider.Generate(ctx, req, nil)
	if resp != nil && cl.spent != nil {
		cl.spent.AddUsage(resp.Usage)
		cl.spent.AddCost(resp)
		cl.spent.ModelRequests++
	}
	if err != nil {
		return verdict{}, timeoutError(ctx, "the judge model", c.timeout, fmt.Errorf("the judge model failed: %w", err))
	}
	return parseJudgement(resp.Content)
}

// parseJudgement reads a judge's answer: its first word is ALLOW or BLOCK
// (any case, punctuation around it ignored); the rest is the reason.
func parseJudgement(answer string) (verdict, error) {
	answer = strings.TrimSpace(answer)
	word, rest, _ := strings.Cut(answer, " ")
	if i := strings.IndexAny(word, "\n:.,;"); i >= 0 {
		word, rest = word[:i], word[i+1:]+" "+rest
	}
	word = strings.Trim(strings.ToUpper(word), "*\"'`[]()")
	rest = strings.Trim(strings.TrimSpace(rest), ":-–— ")
	switch word {
	case "ALLOW":
		return verdict{reason: rest}, nil
	case "BLOCK":
		if rest == "" {
			rest = "the judge model answered BLOCK"
		}
		return verdict{block: true, reason: rest}, nil
	}
	if len(answer) > 80 {
		answer = answer[:80] + "…"
	}
	return verdict{}, fmt.Errorf("the judge model answered neither ALLOW nor BLOCK: %q", answer)
}

// httpCheck posts the text to a moderation endpoint.
type httpCheck struct {
	client  *http.Client
	url     string
	headers map[string]string
	timeout time.Duration
}

// httpRequest and httpAnswer are the moderation endpoint's wire format.
type httpRequest struct {
	Text      string `json:"text"`
	Direction string `json:"direction"`
	Agent     string `json:"agent"`
}

type httpAnswer struct {
	Allow  *bool  `json:"allow"`
	Reason string `json:"reason"`
}

func (c *httpCheck) check(ctx context.Context, text string, cl *call) (verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	body, err := json.Marshal(httpRequest{Text: text, Direction: string(cl.dir), Agent: cl.who.Name})
	if err != nil {
		return verdict{}, fmt.Errorf("encoding the moderation request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return verdict{}, fmt.Errorf("building the moderation request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return verdict{}, timeoutError(ctx, "the moderation endpoint", c.timeout, fmt.Errorf("calling the moderation endpoint: %w", err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return verdict{}, timeoutError(ctx, "the moderation endpoint", c.timeout, fmt.Errorf("reading the moderation answer: %w", err))
	}
	if resp.StatusCode/100 != 2 {
		return verdict{}, fmt.Errorf("the moderation endpoint answered %s", resp.Status)
	}
	var a httpAnswer
	if err := json.Unmarshal(raw, &a); err != nil || a.Allow == nil {
		return verdict{}, fmt.Errorf("the moderation endpoint's answer is not {\"allow\": true|false, \"reason\": \"...\"}")
	}
	if !*a.Allow {
		if a.Reason == "" {
			a.Reason = "the moderation endpoint refused it"
		}
		return verdict{block: true, reason: a.Reason}, nil
	}
	return verdict{reason: a.Reason}, nil
}
