package anthropic

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/troupehq/troupe/engine/model"
)

// maxLineBytes bounds one server-sent-event line. Anthropic events are small
// (deltas), so a longer line means a broken stream.
const maxLineBytes = 16 << 20

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	name string // the event: field, "" when absent
	data string // the data: lines, joined by "\n"
}

// sseReader splits a text/event-stream into events. It reads whole lines with a
// bufio.Scanner, so it does not care how the bytes were split into reads, and
// it accepts both "\n" and "\r\n" line endings.
type sseReader struct {
	sc *bufio.Scanner
}

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	return &sseReader{sc: sc}
}

// next returns the next event with data, or io.EOF at the end of the stream.
// Comments (lines starting with ':'), id and retry fields are ignored. A final
// event not followed by a blank line is still returned.
func (r *sseReader) next() (sseEvent, error) {
	var (
		name    string
		data    strings.Builder
		hasData bool
	)
	for r.sc.Scan() {
		line := r.sc.Text() // ScanLines drops the "\n" and a preceding "\r"
		if line == "" {
			if hasData {
				return sseEvent{name: name, data: data.String()}, nil
			}
			name = "" // an event without data is not dispatched
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			name = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		}
	}
	if err := r.sc.Err(); err != nil {
		return sseEvent{}, err
	}
	if hasData {
		return sseEvent{name: name, data: data.String()}, nil
	}
	return sseEvent{}, io.EOF
}

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
	tools      map[int]*toolBlock // by content block index
	stopReason string
}

// readStream parses a streamed response, calling onDelta for each text delta.
func (c *Client) readStream(ctx context.Context, body io.Reader, onDelta func(model.Delta)) (*model.Response, error) {
	sse := newSSEReader(body)
	st := &streamState{tools: map[int]*toolBlock{}}
	for {
		if ctx.Err() != nil {
			return nil, model.TransportError(ctx, providerName, ctx.Err())
		}
		ev, err := sse.next()
		if err == io.EOF {
			if ctx.Err() != nil {
				return nil, model.TransportError(ctx, providerName, ctx.Err())
			}
			return nil, protocolError("stream ended early", errStreamEnded)
		}
		if errors.Is(err, bufio.ErrTooLong) {
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
func (c *Client) handleEvent(st *streamState, ev sseEvent, onDelta func(model.Delta)) (done bool, err error) {
	switch ev.name {
	case "", "message_start", "content_block_start", "content_block_delta",
		"content_block_stop", "message_delta", "message_stop", "error":
	default:
		return false, nil // ping and events added to the API later
	}
	var e streamEvent
	if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
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
		}
		// thinking_delta, signature_delta, citations_delta: nothing to keep.
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
func eventName(ev sseEvent, typ string) string {
	if ev.name != "" {
		return ev.name
	}
	return typ
}

// finish assembles the response, with tool calls in content block order.
func (st *streamState) finish() *model.Response {
	resp := st.resp
	resp.Content = st.text.String()
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
