// Package fake is a scripted model provider for tests: each call returns the next
// scripted step, so tests can drive the agent loop, teams and the server through
// exact sequences of answers, tool calls, errors and stalls without a vendor.
package fake

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/model"
)

// Step is one scripted model answer.
type Step struct {
	Content   string
	ToolCalls []model.ToolCall
	Usage     model.Usage
	// Reasoning is the step's native reasoning (as a vendor reports it),
	// streamed as one reasoning delta before the content.
	Reasoning string
	Err       error
	// Deltas, when set, are streamed in order instead of Content in one piece
	// (Content is then their concatenation if left empty).
	Deltas []string
	// Block makes the call wait for its context to end after streaming, to test
	// cancellation and timeouts.
	Block bool
	// Delay is waited (honouring the context) before answering.
	Delay time.Duration
	// Match, when set, picks this step only for requests it accepts; steps are
	// otherwise used in order. Matching steps let concurrent callers (team
	// members) follow their own scripts.
	Match func(*model.Request) bool
}

// Provider replays steps. Safe for concurrent use.
type Provider struct {
	mu       sync.Mutex
	steps    []Step
	requests []model.Request
	// Repeat, when set, answers every call after the script ran out.
	Repeat *Step
}

var _ model.Provider = (*Provider)(nil)

// New returns a provider that plays steps in order.
func New(steps ...Step) *Provider { return &Provider{steps: steps} }

// Requests returns copies of the requests received so far.
func (p *Provider) Requests() []model.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]model.Request, len(p.requests))
	copy(out, p.requests)
	return out
}

func (p *Provider) next(req *model.Request) (Step, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := *req
	r.Messages = append([]model.Message(nil), req.Messages...)
	p.requests = append(p.requests, r)
	for i, s := range p.steps {
		if s.Match == nil || s.Match(req) {
			p.steps = append(p.steps[:i:i], p.steps[i+1:]...)
			return s, nil
		}
	}
	if p.Repeat != nil {
		return *p.Repeat, nil
	}
	return Step{}, fmt.Errorf("fake provider: no scripted step left for request %d", len(p.requests))
}

// Generate implements model.Provider.
func (p *Provider) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	s, err := p.next(req)
	if err != nil {
		return nil, err
	}
	if s.Delay > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.Delay):
		}
	}
	content := s.Content
	if len(s.Deltas) > 0 && content == "" {
		for _, d := range s.Deltas {
			content += d
		}
	}
	if onDelta != nil && s.Reasoning != "" {
		onDelta(model.Delta{Reasoning: s.Reasoning})
	}
	if onDelta != nil {
		deltas := s.Deltas
		if len(deltas) == 0 && content != "" {
			deltas = []string{content}
		}
		for _, d := range deltas {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			onDelta(model.Delta{Content: d})
		}
	}
	if s.Block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if s.Err != nil {
		return nil, s.Err
	}
	resp := &model.Response{Content: content, ToolCalls: s.ToolCalls, Usage: s.Usage, Model: req.Model, StopReason: model.StopEnd, Reasoning: s.Reasoning}
	if len(s.ToolCalls) > 0 {
		resp.StopReason = model.StopToolCalls
	}
	return resp, nil
}
