package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/sse"
)

// maxLineBytes bounds one server-sent-event line, and one event's data.
// Anthropic events are small (deltas), so a longer one means a broken stream.
const maxLineBytes = 16 << 20

// streamEvent is the data of any Messages API stream event; which fields are
// set depends on Type.
type streamEvent struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
	// message_start
	Message *struct {
		Model string    `json:"model"`
		Usage wireUsage `json:"usage"`
	} `json:"message"`
	// content_block_start
	ContentBlock *wireContent `json:"content_block"`
	// content_block_delta and message_delta
	Delta *struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		Thinking    string `json:"thinking"`
		Signature   string `json:"signature"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	// message_delta
	Usage *wireUsage `json:"usage"`
	// error
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// toolBlock accumulates a streamed tool_use content block.
type toolBlock struct {
	id, name string
	args     strings.Builder // concatenated partial_json
	input    json.RawMessage // input of content_block_start, used without deltas
}

// streamState assembles a Response from stream events.
type streamState struct {
	resp       model.Response
	text       strings.Builder
	thinking   strings.Builder
	signature  string
	tools      map[int]*toolBlock // by content block index
	stopReason string
}

// readStream parses a streamed response, calling onDelta for each text delta.
func (c *Client) readStream(ctx context.Context, body io.Reader, onDelta func(model.Delta)) (*model.Response, error) {
	events := sse.NewReader(body, maxLineBytes)
	st := &streamState{tools: map[int]*toolBlock{}}
	for {
		if ctx.Err() != nil {
			return nil, model.TransportError(ctx, providerName, ctx.Err())
		}
		ev, err := events.Next() // a truncated final event is used as is
		if err == io.EOF {
			if ctx.Err() != nil {
				return nil, model.TransportError(ctx, providerName, ctx.Err())
			}
			return nil, protocolError("stream ended early", errStreamEnded)
		}
		if errors.Is(err, sse.ErrTooLong) {
			return nil, protocolError("stream line too long", err)
		}
		if err != nil {
			return nil, model.TransportError(ctx, providerName, err)
		}
		done, err := c.handleEvent(st, ev, onDelta)
		if err != nil {
			return nil, err
		}
		if done {
			return st.finish(), nil
		}
	}
}

// handleEvent applies one event to st. It reports done at message_stop.
func (c *Client) handleEvent(st *streamState, ev sse.Event, onDelta func(model.Delta)) (done bool, err error) {
	switch ev.Name {
	case "", "message_start", "content_block_start", "content_block_delta",
		"content_block_stop", "message_delta", "message_stop", "error":
	default:
		return false, nil // ping and events added to the API later
	}
	var e streamEvent
	if err := json.Unmarshal(ev.Data, &e); err != nil {
		return false, protocolError("invalid stream event data", err)
	}
	switch eventName(ev, e.Type) {
	case "message_start":
		if e.Message != nil {
			st.resp.Model = e.Message.Model
			st.resp.Usage.InputTokens = e.Message.Usage.InputTokens
			st.resp.Usage.OutputTokens = e.Message.Usage.OutputTokens
		}
	case "content_block_start":
		b := e.ContentBlock
		if b == nil {
			return false, protocolError("content_block_start without content_block", nil)
		}
		switch b.Type {
		case "text":
			if b.Text != "" {
				st.text.WriteString(b.Text)
				onDelta(model.Delta{Content: b.Text})
			}
		case "tool_use":
			st.tools[e.Index] = &toolBlock{id: b.ID, name: b.Name, input: b.Input}
		case "thinking":
			if b.Thinking != "" {
				st.thinking.WriteString(b.Thinking)
				onDelta(model.Delta{Reasoning: b.Thinking})
			}
		}
	case "content_block_delta":
		if e.Delta == nil {
			return false, protocolError("content_block_delta without delta", nil)
		}
		switch e.Delta.Type {
		case "text_delta":
			if e.Delta.Text != "" {
				st.text.WriteString(e.Delta.Text)
				onDelta(model.Delta{Content: e.Delta.Text})
			}
		case "input_json_delta":
			tb := st.tools[e.Index]
			if tb == nil {
				return false, protocolError("input_json_delta for a block that is not tool_use", nil)
			}
			tb.args.WriteString(e.Delta.PartialJSON)
		case "thinking_delta":
			if e.Delta.Thinking != "" {
				st.thinking.WriteString(e.Delta.Thinking)
				onDelta(model.Delta{Reasoning: e.Delta.Thinking})
			}
		case "signature_delta":
			st.signature += e.Delta.Signature
		}
		// citations_delta: nothing to keep.
	case "message_delta":
		if e.Delta != nil && e.Delta.StopReason != "" {
			st.stopReason = e.Delta.StopReason
		}
		// message_delta usage is cumulative for the whole message.
		if e.Usage != nil {
			if e.Usage.InputTokens > 0 {
				st.resp.Usage.InputTokens = e.Usage.InputTokens
			}
			st.resp.Usage.OutputTokens = e.Usage.OutputTokens
		}
	case "message_stop":
		return true, nil
	case "error":
		if e.Error == nil {
			return false, protocolError("error event without error", nil)
		}
		return false, c.streamError(e.Error.Type, e.Error.Message)
	}
	// content_block_stop needs no action: blocks are complete at message_stop.
	return false, nil
}

// eventName is the event: field, or the data's type when the field is absent.
func eventName(ev sse.Event, typ string) string {
	if ev.Name != "" {
		return ev.Name
	}
	return typ
}

// finish assembles the response, with tool calls in content block order.
func (st *streamState) finish() *model.Response {
	resp := st.resp
	resp.Content = st.text.String()
	resp.Reasoning, resp.ReasoningSignature = st.thinking.String(), st.signature
	indices := make([]int, 0, len(st.tools))
	for i := range st.tools {
		indices = append(indices, i)
	}
	slices.Sort(indices)
	for _, i := range indices {
		tb := st.tools[i]
		args := tb.args.String()
		if strings.TrimSpace(args) == "" {
			args = inputArguments(tb.input)
		}
		resp.ToolCalls = append(resp.ToolCalls, model.ToolCall{ID: tb.id, Name: tb.name, Arguments: args})
	}
	resp.StopReason = stopReason(st.stopReason, len(resp.ToolCalls) > 0)
	return &resp
}
