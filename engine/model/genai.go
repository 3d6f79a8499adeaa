package model

import (
	"encoding/json"
	"unicode/utf8"
)

// Exchange renders a model request and its answer as the OpenTelemetry
// GenAI semantic conventions record them on a chat span: the system
// instructions (gen_ai.system_instructions), the input messages
// (gen_ai.input.messages) and the output messages (gen_ai.output.messages),
// each a JSON array. Every text, tool argument and tool result passes
// through scrub (which removes secrets) and is cut to maxPart bytes, so the
// JSON stays valid however large the conversation; only the last maxMessages
// input messages are kept (a long history is clipped from its oldest end).
// resp may be nil (a failed request has no output).
func Exchange(req *Request, resp *Response, scrub func(string) string, maxPart, maxMessages int) (system, input, output string) {
	clip := func(s string) string { return clipText(scrub(s), maxPart) }
	if req.System != "" {
		system = marshal([]genaiPart{{Type: "text", Content: clip(req.System)}})
	}
	msgs := req.Messages
	if maxMessages > 0 && len(msgs) > maxMessages {
		msgs = msgs[len(msgs)-maxMessages:]
	}
	in := make([]genaiMessage, 0, len(msgs))
	for _, m := range msgs {
		in = append(in, genaiOf(m, clip))
	}
	input = marshal(in)
	if resp != nil {
		out := genaiOf(Message{Role: RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls}, clip)
		out.FinishReason = finishReason(resp)
		output = marshal([]genaiMessage{out})
	}
	return system, input, output
}

// genaiMessage is one message of gen_ai.input.messages or
// gen_ai.output.messages.
type genaiMessage struct {
	Role         string      `json:"role"`
	Parts        []genaiPart `json:"parts"`
	FinishReason string      `json:"finish_reason,omitempty"`
}

// genaiPart is a text, tool_call or tool_call_response part.
type genaiPart struct {
	Type      string `json:"type"`
	Content   string `json:"content,omitempty"`
	ID        string `json:"id,omitempty"`
	Name      string `json:"name,omitempty"`
	Arguments any    `json:"arguments,omitempty"`
	Response  string `json:"response,omitempty"`
}

func genaiOf(m Message, clip func(string) string) genaiMessage {
	g := genaiMessage{Role: string(m.Role), Parts: []genaiPart{}}
	switch {
	case m.Role == RoleTool:
		g.Parts = append(g.Parts, genaiPart{Type: "tool_call_response", ID: m.ToolCallID, Response: clip(m.Content)})
		return g
	case m.Content != "":
		g.Parts = append(g.Parts, genaiPart{Type: "text", Content: clip(m.Content)})
	}
	for _, c := range m.ToolCalls {
		args := clip(c.Arguments)
		// Arguments are a JSON object when whole; clipped or invalid ones
		// stay a string.
		var part any = args
		if json.Valid([]byte(args)) {
			part = json.RawMessage(args)
		}
		g.Parts = append(g.Parts, genaiPart{Type: "tool_call", ID: c.ID, Name: c.Name, Arguments: part})
	}
	return g
}

func finishReason(r *Response) string {
	switch {
	case len(r.ToolCalls) > 0:
		return "tool_call"
	case r.StopReason == "max_tokens" || r.StopReason == "length":
		return "length"
	}
	return "stop"
}

func marshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// clipText cuts s to at most n bytes on a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if n <= 0 || len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
