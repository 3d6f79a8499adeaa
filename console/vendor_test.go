package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// vendor is an OpenAI Chat Completions server for tests. It answers from the
// conversation it receives, over the real wire format (JSON or SSE):
//
//   - a user message "calc: EXPR" → a calculator tool call with EXPR;
//   - a trailing tool result → "The answer is RESULT.";
//   - a user message containing "block" → waits until the client goes away;
//   - anything else → "system=<system prompt>|user=<message>|history=<n>",
//     where n counts the messages before the last one.
type vendor struct {
	srv   *httptest.Server
	mu    sync.Mutex
	log   []vendorRequest
	quiet bool // benchmarks: do not record requests
	// delay, when set, is how long every answer takes (a real model's
	// latency, for benchmarks).
	delay time.Duration
	// reply, when set, is every plain answer (a model's answer of a fixed
	// size, for benchmarks: the default answer repeats the request, which
	// a summary of a summary makes grow turn after turn).
	reply string
}

type vendorRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role       string `json:"role"`
		Content    any    `json:"content"`
		ToolCallID string `json:"tool_call_id"`
	} `json:"messages"`
}

func newVendor(t testing.TB) *vendor {
	v := &vendor{}
	v.srv = httptest.NewServer(http.HandlerFunc(v.serve))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendor) requests() []vendorRequest {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]vendorRequest(nil), v.log...)
}

func text(c any) string {
	s, _ := c.(string)
	return s
}

func (v *vendor) serve(w http.ResponseWriter, r *http.Request) {
	var req vendorRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	if !v.quiet {
		v.mu.Lock()
		v.log = append(v.log, req)
		v.mu.Unlock()
	}

	if v.delay > 0 {
		time.Sleep(v.delay)
	}
	system, lastUser := "", ""
	for _, m := range req.Messages {
		switch m.Role {
		case "system":
			system = text(m.Content)
		case "user":
			lastUser = text(m.Content)
		}
	}
	last := req.Messages[len(req.Messages)-1]
	var content, toolArgs string
	switch {
	case last.Role == "tool":
		content = "The answer is " + text(last.Content) + "."
	case strings.HasPrefix(lastUser, "calc: "):
		b, _ := json.Marshal(map[string]string{"expression": strings.TrimPrefix(lastUser, "calc: ")})
		toolArgs = string(b)
	case strings.HasPrefix(lastUser, "sleep "):
		d, _ := time.ParseDuration(strings.TrimPrefix(lastUser, "sleep "))
		time.Sleep(d)
		content = "slept " + d.String()
	case strings.Contains(lastUser, "block"):
		if req.Stream {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"thinking \"}}]}\n\n")
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
		return
	case v.reply != "":
		content = v.reply
	default:
		content = fmt.Sprintf("system=%s|user=%s|history=%d", system, lastUser, len(req.Messages)-2)
	}
	if !req.Stream {
		msg := map[string]any{"role": "assistant", "content": content}
		finish := "stop"
		if toolArgs != "" {
			msg["content"] = nil
			msg["tool_calls"] = []any{map[string]any{"id": "call_1", "type": "function", "function": map[string]any{"name": "calculator", "arguments": toolArgs}}}
			finish = "tool_calls"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"model": req.Model, "choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}},
			"usage": map[string]any{"prompt_tokens": 10, "completion_tokens": 5}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	if toolArgs != "" {
		send(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"tool_calls": []any{map[string]any{"index": 0, "id": "call_1", "type": "function", "function": map[string]any{"name": "calculator", "arguments": ""}}}}}}})
		send(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": toolArgs}}}}}}})
		send(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "tool_calls"}}})
	} else {
		for _, word := range strings.SplitAfter(content, "|") {
			send(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": word}}}})
		}
		send(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}})
	}
	send(map[string]any{"choices": []any{}, "usage": map[string]any{"prompt_tokens": 10, "completion_tokens": 5}})
	fmt.Fprint(w, "data: [DONE]\n\n")
}
